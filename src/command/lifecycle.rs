//! Lifecycle rules, applied in the bucket's data group
//! (`docs/design/lifecycle.md`).
//!
//! A pass over a bucket is a series of [`Command::Lifecycle`] steps, each
//! reading a bounded part of the bucket from where the previous one
//! stopped. What a step removes it decides in its own apply, from the
//! records as they are at that point of the log and the clock the command
//! carries: a version rewritten, restored or locked since the worker
//! looked is judged as it is now, never as it was. Every action goes
//! through the same code as a client's deletion, so Object Lock holds
//! against lifecycle as it does against everyone.
//!
//! [`Command::Lifecycle`]: super::Command::Lifecycle

use super::versions::{self, Delete};
use super::{Outcome, Txn, abort_upload, read, sequence};
use crate::record::{
    self, BucketId, DeleteMarker, LifecycleConfig, LifecycleFilter, LifecycleRule, ObjectEntry,
    Table, UploadRecord, VersionId, VersionRecord, VersionRef, keys,
};
use serde::{Deserialize, Serialize};

/// Most rules in a configuration (S3's limit).
pub const MAX_RULES: usize = 1000;
/// Records one step reads before it stops.
pub const STEP_READS: usize = 1000;
/// Actions one step takes before it stops (and most delete markers it may
/// make).
pub const STEP_ACTIONS: usize = 100;
/// Records read at once within one key's versions.
const PAGE: usize = 64;

/// Where a step of a lifecycle pass starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifecycleCursor {
    /// At the bucket's first key.
    Start,
    /// After every version of this key.
    After(String),
    /// Within one key's versions.
    Within(Within),
    /// In the bucket's multipart uploads, after this one (sort key).
    Uploads(Option<String>),
}

/// A key whose versions a step did not finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Within {
    /// The key.
    pub key: String,
    /// The last version looked at ([`Table::Versions`] sort key).
    pub after: String,
    /// Noncurrent versions seen so far (newer than the rest).
    pub newer: u32,
    /// When the last version looked at was made (the next one became
    /// noncurrent then).
    pub successor_ms: u64,
}

/// One step, as the command gives it.
pub(super) struct Step<'a> {
    pub bucket: BucketId,
    pub from: LifecycleCursor,
    pub now_ms: u64,
    pub day_ms: u64,
    pub markers: &'a [VersionId],
}

/// `t` plus `days`, rounded up to the next day boundary (midnight UTC for
/// a real day), as S3 computes expiry dates.
pub fn due_ms(t_ms: u64, days: u32, day_ms: u64) -> u64 {
    let day_ms = day_ms.max(1);
    t_ms.saturating_add(u64::from(days).saturating_mul(day_ms))
        .div_ceil(day_ms)
        .saturating_mul(day_ms)
}

/// Whether `filter` selects a version of `key` with `tags` and `size`
/// (`None`: a delete marker, which no tag filter selects and size filters
/// do not concern).
pub fn selects(
    filter: &LifecycleFilter,
    key: &str,
    tags: &[(String, String)],
    size: Option<u64>,
) -> bool {
    if !key.starts_with(&filter.prefix) {
        return false;
    }
    if !filter.tags.iter().all(|t| tags.contains(t)) {
        return false;
    }
    let Some(size) = size else {
        return true;
    };
    filter.size_greater_than.is_none_or(|g| size > g)
        && filter.size_less_than.is_none_or(|l| size < l)
}

/// When a current object `e` expires under `rules`, if any does.
pub fn expiry_of(
    rules: &[LifecycleRule],
    key: &str,
    e: &ObjectEntry,
    day_ms: u64,
) -> Option<(u64, String)> {
    rules
        .iter()
        .filter(|r| r.enabled && selects(&r.filter, key, &e.tags, Some(e.size)))
        .filter_map(|r| {
            let x = r.expiration.as_ref()?;
            let at = match (x.days, x.date_ms) {
                (Some(d), _) => due_ms(e.last_modified_ms, d, day_ms),
                (None, Some(date)) => date,
                (None, None) => return None,
            };
            Some((at, r.id.clone()))
        })
        .min()
}

struct Run<'a, T: Txn> {
    txn: &'a mut T,
    index: u64,
    bucket: BucketId,
    owner: String,
    rules: Vec<LifecycleRule>,
    now_ms: u64,
    day_ms: u64,
    markers: &'a [VersionId],
    used_markers: usize,
    reads: usize,
    actions: u32,
}

impl<T: Txn> Run<'_, T> {
    fn spent(&self) -> bool {
        self.reads >= STEP_READS || self.actions as usize >= STEP_ACTIONS
    }

    fn pk(&self) -> String {
        self.bucket.to_hex()
    }

    /// The first key after `after` that has a current object or versions.
    fn next_key(&mut self, after: Option<&str>) -> Option<String> {
        let pk = self.pk();
        let object = self.txn.scan(Table::Objects, &pk, "", after, 1);
        let versions_after = after.map(|k| format!("{}~", keys::versions_of(k)));
        let version = self
            .txn
            .scan(Table::Versions, &pk, "", versions_after.as_deref(), 1);
        self.reads += object.len() + version.len();
        let o = object.into_iter().next().map(|(k, _)| k);
        let v = version
            .into_iter()
            .next()
            .and_then(|(k, _)| keys::parse_version(&k).map(|(key, _)| key));
        match (o, v) {
            (Some(o), Some(v)) => Some(o.min(v)),
            (o, v) => o.or(v),
        }
    }

    /// A delete marker for an expiration to make; `None` when the step has
    /// none left.
    fn marker(&mut self) -> Option<DeleteMarker> {
        let version = *self.markers.get(self.used_markers)?;
        let seq = sequence(self.index, self.used_markers);
        self.used_markers += 1;
        Some(DeleteMarker {
            version,
            seq,
            null_version: false,
            last_modified_ms: self.now_ms,
            owner: self.owner.clone(),
        })
    }

    /// Remove one version for good, as a `DELETE ?versionId=` would (a
    /// locked one stays).
    fn remove(&mut self, key: &str, version: VersionRef) -> Result<(), Outcome> {
        let marker = DeleteMarker {
            version: VersionId([0; 16]),
            seq: 0,
            null_version: false,
            last_modified_ms: self.now_ms,
            owner: String::new(),
        };
        let out = versions::delete(
            self.txn,
            Delete {
                bucket: self.bucket,
                key,
                version: Some(version),
                marker,
                bypass_governance: false,
            },
        )?;
        if out.succeeded() {
            self.actions += 1;
        }
        Ok(())
    }

    /// Apply the rules to one key: its current object, then its other
    /// versions newest first (from `within`, when resuming inside it);
    /// where to resume if the budget ran out inside it.
    fn key(
        &mut self,
        key: &str,
        within: Option<Within>,
    ) -> Result<Option<LifecycleCursor>, Outcome> {
        let (mut after, mut newer, mut successor_ms, fresh) = match within {
            Some(w) => (Some(w.after), w.newer, w.successor_ms, false),
            None => (None, 0, 0, true),
        };
        let mut has_current = false;
        if fresh {
            let current: Option<ObjectEntry> = read(self.txn, &keys::object(self.bucket, key))?;
            self.reads += 1;
            if let Some(e) = current {
                has_current = true;
                successor_ms = e.last_modified_ms;
                if expiry_of(&self.rules, key, &e, self.day_ms)
                    .is_some_and(|(at, _)| self.now_ms >= at)
                {
                    // The step checked before this key that one is left.
                    let Some(marker) = self.marker() else {
                        return Err(Outcome::Invalid("no delete marker left".into()));
                    };
                    let out = versions::delete(
                        self.txn,
                        Delete {
                            bucket: self.bucket,
                            key,
                            version: None,
                            marker,
                            bypass_governance: false,
                        },
                    )?;
                    if out.succeeded() {
                        self.actions += 1;
                        // Its successor is the marker just made.
                        has_current = false;
                    }
                }
            }
        }
        let prefix = keys::versions_of(key);
        let pk = self.pk();
        let mut first = fresh;
        loop {
            let page = self
                .txn
                .scan(Table::Versions, &pk, &prefix, after.as_deref(), PAGE);
            self.reads += page.len();
            let more = page.len() == PAGE;
            let mut records = Vec::with_capacity(page.len());
            for (sort_key, bytes) in page {
                let r: VersionRecord = record::decode("object version", &bytes)
                    .map_err(|e| Outcome::Invalid(e.to_string()))?;
                records.push((sort_key, r));
            }
            for i in 0..records.len() {
                let (sort_key, r) = &records[i];
                let latest = first && !has_current;
                first = false;
                let vref = if r.is_null() {
                    VersionRef::Null
                } else {
                    VersionRef::Id(r.version())
                };
                match r {
                    VersionRecord::DeleteMarker(m) if latest => {
                        // The only version left when nothing follows it.
                        let alone = records.len() == 1 && !more && after.is_none();
                        let expire = alone
                            && self.rules.iter().any(|rule| {
                                rule.enabled
                                    && rule.expiration.as_ref().is_some_and(|x| {
                                        x.expired_object_delete_marker == Some(true)
                                    })
                                    && selects(&rule.filter, key, &[], None)
                            });
                        if expire {
                            self.remove(key, vref)?;
                        }
                        successor_ms = m.last_modified_ms;
                    }
                    _ => {
                        let (since, tags, size, made) = match r {
                            VersionRecord::Object(e) => (
                                e.noncurrent_since_ms.unwrap_or(successor_ms),
                                e.tags.as_slice(),
                                Some(e.size),
                                e.last_modified_ms,
                            ),
                            VersionRecord::DeleteMarker(m) => {
                                (successor_ms, &[][..], None, m.last_modified_ms)
                            }
                        };
                        let expire = self.rules.iter().any(|rule| {
                            rule.enabled
                                && rule.noncurrent.as_ref().is_some_and(|n| {
                                    newer >= n.newer_versions.unwrap_or(0)
                                        && self.now_ms >= due_ms(since, n.days, self.day_ms)
                                })
                                && selects(&rule.filter, key, tags, size)
                        });
                        newer += 1;
                        successor_ms = made;
                        if expire {
                            self.remove(key, vref)?;
                        }
                    }
                }
                after = Some(sort_key.clone());
                if self.spent() && (i + 1 < records.len() || more) {
                    return Ok(Some(LifecycleCursor::Within(Within {
                        key: key.to_owned(),
                        after: sort_key.clone(),
                        newer,
                        successor_ms,
                    })));
                }
            }
            if !more {
                return Ok(None);
            }
        }
    }

    /// The keys from `from`, until the budget or the delete markers run
    /// out (then where to resume) or the keys do (then the uploads).
    fn keys(&mut self, from: LifecycleCursor) -> Result<Option<LifecycleCursor>, Outcome> {
        let mut after = match from {
            LifecycleCursor::Within(w) => {
                let key = w.key.clone();
                if let Some(resume) = self.key(&key, Some(w))? {
                    return Ok(Some(resume));
                }
                Some(key)
            }
            LifecycleCursor::After(key) => Some(key),
            LifecycleCursor::Start | LifecycleCursor::Uploads(_) => None,
        };
        loop {
            let resume = || match &after {
                Some(k) => LifecycleCursor::After(k.clone()),
                None => LifecycleCursor::Start,
            };
            if self.spent() {
                return Ok(Some(resume()));
            }
            let Some(key) = self.next_key(after.as_deref()) else {
                return Ok(Some(LifecycleCursor::Uploads(None)));
            };
            if self.used_markers == self.markers.len() {
                // Out of delete markers: the next step takes this key.
                return Ok(Some(resume()));
            }
            if let Some(resume) = self.key(&key, None)? {
                return Ok(Some(resume));
            }
            after = Some(key);
        }
    }

    fn uploads(&mut self, mut after: Option<String>) -> Result<Option<LifecycleCursor>, Outcome> {
        let pk = self.pk();
        loop {
            let limit = PAGE.min(STEP_READS.saturating_sub(self.reads)).max(1);
            let page = self
                .txn
                .scan(Table::Uploads, &pk, "", after.as_deref(), limit);
            self.reads += page.len();
            let done = page.len() < limit;
            for (sort_key, bytes) in page {
                let u: UploadRecord = record::decode("upload", &bytes)
                    .map_err(|e| Outcome::Invalid(e.to_string()))?;
                let abort = self.rules.iter().any(|rule| {
                    rule.enabled
                        && rule.abort_upload_days.is_some_and(|d| {
                            u.key.starts_with(&rule.filter.prefix)
                                && self.now_ms >= due_ms(u.initiated_ms, d, self.day_ms)
                        })
                });
                if abort && abort_upload(self.txn, self.bucket, &u.key, &u.upload_id)?.succeeded() {
                    self.actions += 1;
                }
                after = Some(sort_key);
                if self.spent() {
                    return Ok(Some(LifecycleCursor::Uploads(after)));
                }
            }
            if done {
                return Ok(None);
            }
        }
    }
}

/// One step of a pass: apply the bucket's rules from `from` until the
/// budget is spent; where the next step starts.
pub(super) fn step(txn: &mut impl Txn, index: u64, s: Step<'_>) -> Result<Outcome, Outcome> {
    if s.markers.len() > STEP_ACTIONS || s.day_ms == 0 {
        return Ok(Outcome::Invalid("bad lifecycle step".into()));
    }
    let Some(config) = read::<LifecycleConfig>(txn, &keys::lifecycle(s.bucket))? else {
        return Ok(Outcome::Lifecycle {
            next: None,
            actions: 0,
        });
    };
    let mut run = Run {
        txn,
        index,
        bucket: s.bucket,
        owner: config.owner,
        rules: config.rules.into_iter().filter(|r| r.enabled).collect(),
        now_ms: s.now_ms,
        day_ms: s.day_ms,
        markers: s.markers,
        used_markers: 0,
        reads: 0,
        actions: 0,
    };
    let next = match s.from {
        LifecycleCursor::Uploads(after) => run.uploads(after)?,
        from => run.keys(from)?,
    };
    Ok(Outcome::Lifecycle {
        next,
        actions: run.actions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::versions::tests::{B, State, locked_bucket};
    use crate::command::{Command, LifecycleCursor};
    use crate::record::{
        FilterForm, LifecycleExpiration, LockMode, NoncurrentExpiration, Retention, Versioning,
    };

    /// The test's day: 10 "ms" (the test state's clock is its log index).
    const DAY: u64 = 10;

    fn rule(id: &str, prefix: &str) -> LifecycleRule {
        LifecycleRule {
            id: id.into(),
            enabled: true,
            filter: LifecycleFilter {
                form: FilterForm::Single,
                prefix: prefix.into(),
                tags: vec![],
                size_greater_than: None,
                size_less_than: None,
            },
            expiration: None,
            noncurrent: None,
            abort_upload_days: None,
        }
    }

    fn expire_days(id: &str, prefix: &str, days: u32) -> LifecycleRule {
        LifecycleRule {
            expiration: Some(LifecycleExpiration {
                days: Some(days),
                date_ms: None,
                expired_object_delete_marker: None,
            }),
            ..rule(id, prefix)
        }
    }

    fn configure(s: &mut State, rules: Vec<LifecycleRule>) {
        let config = LifecycleConfig {
            owner: "o".into(),
            rules,
        };
        assert_eq!(
            s.run(Command::SetLifecycle {
                bucket: B,
                config: Some(config)
            }),
            Outcome::Ok
        );
    }

    /// A whole pass at `now`: (actions, steps).
    fn pass(s: &mut State, now: u64) -> (u32, usize) {
        let mut from = LifecycleCursor::Start;
        let (mut actions, mut steps) = (0, 0);
        loop {
            let markers = (0..STEP_ACTIONS).map(|_| s.fresh()).collect();
            steps += 1;
            assert!(steps < 10_000, "a pass ends");
            match s.run(Command::Lifecycle {
                bucket: B,
                from,
                now_ms: now,
                day_ms: DAY,
                markers,
            }) {
                Outcome::Lifecycle { next, actions: a } => {
                    assert!(a as usize <= STEP_ACTIONS);
                    actions += a;
                    match next {
                        Some(c) => from = c,
                        None => return (actions, steps),
                    }
                }
                other => panic!("lifecycle step: {other:?}"),
            }
        }
    }

    #[test]
    fn due_dates_round_up_to_the_next_day() {
        assert_eq!(due_ms(0, 1, 86_400_000), 86_400_000);
        // Made at 10:00 on day 0 with one day: due at midnight of day 2.
        assert_eq!(due_ms(36_000_000, 1, 86_400_000), 2 * 86_400_000);
        assert_eq!(due_ms(86_400_000, 0, 86_400_000), 86_400_000);
        // Far enough in the future is never.
        assert_eq!(due_ms(u64::MAX - 5, 3, 10), u64::MAX);
    }

    #[test]
    fn expiration_removes_matching_current_objects_once_due() {
        let mut s = State::new();
        s.put("logs/a", "a"); // made at 0: due at ceil(10 / 10) * 10 = 10
        s.put("keep/b", "b");
        let mut tagged = expire_days("tagged", "", 1);
        tagged.filter.tags = vec![("t".into(), "v".into())];
        configure(&mut s, vec![expire_days("logs", "logs/", 1), tagged]);
        assert_eq!(pass(&mut s, 9).0, 0);
        assert_eq!(s.read("logs/a", None).as_deref(), Some("a"));
        assert_eq!(pass(&mut s, 10).0, 1);
        assert_eq!(s.read("logs/a", None), None);
        assert_eq!(s.read("keep/b", None).as_deref(), Some("b"));
        assert_eq!(s.stats().objects, 1);
        // A disabled rule does nothing; removing the configuration stops it.
        let mut off = expire_days("all", "", 1);
        off.enabled = false;
        configure(&mut s, vec![off]);
        assert_eq!(pass(&mut s, 1_000).0, 0);
        s.run(Command::SetLifecycle {
            bucket: B,
            config: None,
        });
        assert_eq!(pass(&mut s, 1_000), (0, 1));
    }

    #[test]
    fn size_and_tag_filters_select_versions() {
        let f = LifecycleFilter {
            form: FilterForm::And,
            prefix: "p/".into(),
            tags: vec![("a".into(), "1".into())],
            size_greater_than: Some(10),
            size_less_than: Some(20),
        };
        let tags = [
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ];
        assert!(selects(&f, "p/x", &tags, Some(15)));
        assert!(!selects(&f, "q/x", &tags, Some(15)));
        assert!(!selects(&f, "p/x", &tags[1..], Some(15)));
        assert!(!selects(&f, "p/x", &tags, Some(10)));
        assert!(!selects(&f, "p/x", &tags, Some(20)));
        // Delete markers carry no tags.
        assert!(!selects(&f, "p/x", &[], None));
    }

    #[test]
    fn versioned_buckets_get_markers_then_lose_old_versions_and_lone_markers() {
        let mut s = State::new();
        s.versioning(Versioning::Enabled);
        let v1 = s.put("k", "1").unwrap();
        let v2 = s.put("k", "2").unwrap();
        let v3 = s.put("k", "3").unwrap();
        let gone = s.put("lone", "x").unwrap();
        let noncurrent = LifecycleRule {
            noncurrent: Some(NoncurrentExpiration {
                days: 2,
                newer_versions: Some(1),
            }),
            ..rule("old", "")
        };
        let markers = LifecycleRule {
            expiration: Some(LifecycleExpiration {
                days: None,
                date_ms: None,
                expired_object_delete_marker: Some(true),
            }),
            ..rule("markers", "")
        };
        configure(
            &mut s,
            vec![expire_days("current", "", 1), noncurrent, markers],
        );
        // Made at 1 to 4, the current versions expire into markers at 20.
        assert_eq!(pass(&mut s, 20).0, 2);
        let listing = s.listing("", 100);
        let kinds: Vec<(&str, bool, &str)> = listing
            .iter()
            .map(|(k, _, latest, what)| (k.as_str(), *latest, what.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("k", true, "marker"),
                ("k", false, "3"),
                ("k", false, "2"),
                ("k", false, "1"),
                ("lone", true, "marker"),
                ("lone", false, "x"),
            ]
        );
        // Two days after they became noncurrent (v1 and v2 at 2 and 3, v3
        // and x at 20), all but the newest noncurrent version of each key
        // go.
        assert_eq!(pass(&mut s, 30).0, 2);
        assert_eq!(s.read("k", Some(&v1)), None);
        assert_eq!(s.read("k", Some(&v2)), None);
        assert_eq!(s.read("k", Some(&v3)).as_deref(), Some("3"));
        assert_eq!(s.read("lone", Some(&gone)).as_deref(), Some("x"));
        // With no newer-versions allowance, the rest go, and then the
        // markers left alone.
        let noncurrent = LifecycleRule {
            noncurrent: Some(NoncurrentExpiration {
                days: 2,
                newer_versions: None,
            }),
            ..rule("old", "")
        };
        let markers = LifecycleRule {
            expiration: Some(LifecycleExpiration {
                days: None,
                date_ms: None,
                expired_object_delete_marker: Some(true),
            }),
            ..rule("markers", "")
        };
        configure(&mut s, vec![noncurrent, markers]);
        assert_eq!(pass(&mut s, 40).0, 2);
        assert_eq!(pass(&mut s, 40).0, 2);
        assert_eq!(s.listing("", 100), vec![]);
        assert_eq!(s.stats().objects, 0);
    }

    #[test]
    fn locked_versions_outlive_every_rule() {
        let mut s = locked_bucket(None);
        let until = Retention {
            mode: LockMode::Compliance,
            until_ms: 1_000,
        };
        let v = match s.put_locked("k", "1", Some(until), false) {
            Outcome::Versioned { version_id } => version_id,
            other => panic!("{other:?}"),
        };
        s.put("k", "2");
        let noncurrent = LifecycleRule {
            noncurrent: Some(NoncurrentExpiration {
                days: 1,
                newer_versions: None,
            }),
            ..rule("old", "")
        };
        configure(&mut s, vec![expire_days("current", "", 1), noncurrent]);
        pass(&mut s, 100);
        pass(&mut s, 500);
        assert_eq!(s.read("k", Some(&v)).as_deref(), Some("1"));
        pass(&mut s, 1_000);
        assert_eq!(s.read("k", Some(&v)), None);
    }

    #[test]
    fn passes_are_bounded_steps_that_resume_inside_a_key() {
        let mut s = State::new();
        s.versioning(Versioning::Enabled);
        let keys = 3 * STEP_READS;
        for i in 0..keys {
            s.put(&format!("key{i:05}"), "x");
        }
        // One key with more versions than a step reads.
        for _ in 0..(STEP_READS * 3 / 2) {
            s.put("many", "m");
        }
        let noncurrent = LifecycleRule {
            noncurrent: Some(NoncurrentExpiration {
                days: 1,
                newer_versions: Some(2),
            }),
            ..rule("old", "many")
        };
        configure(&mut s, vec![expire_days("all", "key", 1), noncurrent]);
        let now = s.index + 10 * DAY;
        let (actions, steps) = pass(&mut s, now);
        let many_removed = STEP_READS * 3 / 2 - 1 - 2;
        assert_eq!(actions as usize, keys + many_removed);
        assert!(steps > keys / STEP_ACTIONS, "{steps} steps");
        assert_eq!(s.stats().objects as usize, 3 + keys);
        let left: Vec<_> = s
            .listing("many", 10_000)
            .into_iter()
            .map(|(_, _, latest, _)| latest)
            .collect();
        assert_eq!(left, vec![true, false, false]);
        // Nothing more is due.
        assert_eq!(pass(&mut s, now).0, 0);
    }

    #[test]
    fn incomplete_uploads_are_aborted_after_their_days() {
        let mut s = State::new();
        for (i, key) in ["tmp/a", "tmp/b", "keep/c"].iter().enumerate() {
            let record = UploadRecord {
                key: (*key).into(),
                upload_id: format!("u{i}"),
                initiated_ms: 1,
                owner: "o".into(),
                content_type: None,
                headers: vec![],
                user_metadata: vec![],
                checksum_algorithm: None,
                checksum_kind: None,
                tags: vec![],
                retention: None,
                legal_hold: false,
                grants: vec![],
            };
            assert_eq!(
                s.run(Command::CreateUpload { bucket: B, record }),
                Outcome::Ok
            );
        }
        let abort = LifecycleRule {
            abort_upload_days: Some(2),
            ..rule("abort", "tmp/")
        };
        configure(&mut s, vec![abort]);
        assert_eq!(pass(&mut s, 29).0, 0);
        assert_eq!(pass(&mut s, 30).0, 2);
        assert_eq!(s.stats().uploads, 1);
    }
}
