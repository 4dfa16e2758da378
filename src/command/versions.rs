//! Object versions: where each version of a key is, and how writes and
//! deletes move them (`docs/design/versioning.md`).
//!
//! A key's current object, when its latest version is an object, is its
//! record in [`Table::Objects`], so reads and listings of current objects
//! cost what they cost without versioning. Every other version (older
//! objects, and every delete marker, the latest one too) is a record of
//! [`Table::Versions`], sorted newest first within its key, with an index
//! by version id ([`Table::VersionIds`]) and, for a `null` version, by key
//! ([`Table::NullVersions`]). A bucket that was never versioned has no
//! record in these tables at all.

use super::{Delta, Outcome, account, admit, drop_data, read};
use crate::command::{KvRead, Txn};
use crate::record::{
    self, BucketId, BucketSettings, DefaultRetention, DeleteMarker, ListEntry, LockMode, MetaKey,
    ObjectEntry, Retention, Table, VersionRecord, VersionRef, Versioning, keys,
};
use serde::{Deserialize, Serialize};

/// Most records one listing page reads from either table before it stops
/// and says it is truncated (a page of delete markers under a delimiter
/// could otherwise read a whole bucket).
pub const MAX_VERSION_LIST_READS: usize = 10_000;

/// A day, for default retention.
const DAY_MS: u64 = 86_400_000;

/// A version as a lookup found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The current object (in [`Table::Objects`]).
    Current(ObjectEntry),
    /// A record of [`Table::Versions`], with its sort key there.
    Noncurrent(String, VersionRecord),
}

impl Found {
    /// The version as a record.
    pub fn record(&self) -> VersionRecord {
        match self {
            Self::Current(e) => VersionRecord::Object(e.clone()),
            Self::Noncurrent(_, r) => r.clone(),
        }
    }
}

fn get<T: serde::de::DeserializeOwned>(
    kv: &(impl KvRead + ?Sized),
    key: &MetaKey,
) -> Result<Option<T>, Outcome> {
    match kv.get(key) {
        None => Ok(None),
        Some(bytes) => record::decode(key.table.name(), &bytes)
            .map(Some)
            .map_err(|e| Outcome::Invalid(e.to_string())),
    }
}

/// A bucket's settings (the defaults when none were ever set).
pub fn settings(kv: &(impl KvRead + ?Sized), bucket: BucketId) -> Result<BucketSettings, Outcome> {
    Ok(get(kv, &keys::bucket_settings(bucket))?.unwrap_or_default())
}

/// The version `which` of `key`, or with `None` its latest version (the
/// current object, or else the newest delete marker or version).
pub fn find(
    kv: &(impl KvRead + ?Sized),
    bucket: BucketId,
    key: &str,
    which: Option<VersionRef>,
) -> Result<Option<Found>, Outcome> {
    let current: Option<ObjectEntry> = get(kv, &keys::object(bucket, key))?;
    let Some(which) = which else {
        if let Some(c) = current {
            return Ok(Some(Found::Current(c)));
        }
        return newest_noncurrent(kv, bucket, key);
    };
    if let Some(c) = current
        && which.names(c.version, c.null_version)
    {
        return Ok(Some(Found::Current(c)));
    }
    let index = match which {
        VersionRef::Null => keys::null_version(bucket, key),
        VersionRef::Id(v) => keys::version_id(bucket, v),
    };
    let Some(sort_key) = get::<String>(kv, &index)? else {
        return Ok(None);
    };
    // Ids are unique in a bucket, but the id may name another key's.
    if keys::parse_version(&sort_key).is_none_or(|(k, _)| k != key) {
        return Ok(None);
    }
    let vkey = MetaKey::new(Table::Versions, bucket.to_hex(), sort_key.clone());
    Ok(get::<VersionRecord>(kv, &vkey)?
        .filter(|r| which.names(r.version(), r.is_null()))
        .map(|r| Found::Noncurrent(sort_key, r)))
}

/// A version for a read: the record, and whether it is the key's latest.
pub fn lookup(
    kv: &(impl KvRead + ?Sized),
    bucket: BucketId,
    key: &str,
    which: Option<VersionRef>,
) -> Result<Option<(VersionRecord, bool)>, Outcome> {
    let Some(found) = find(kv, bucket, key, which)? else {
        return Ok(None);
    };
    let latest = match &found {
        Found::Current(_) => true,
        Found::Noncurrent(sort_key, _) => {
            which.is_none()
                || (kv.get(&keys::object(bucket, key)).is_none()
                    && matches!(
                        newest_noncurrent(kv, bucket, key)?,
                        Some(Found::Noncurrent(newest, _)) if newest == *sort_key
                    ))
        }
    };
    Ok(Some((found.record(), latest)))
}

fn newest_noncurrent(
    kv: &(impl KvRead + ?Sized),
    bucket: BucketId,
    key: &str,
) -> Result<Option<Found>, Outcome> {
    let newest = kv.scan(
        Table::Versions,
        &bucket.to_hex(),
        &keys::versions_of(key),
        None,
        1,
    );
    match newest.into_iter().next() {
        None => Ok(None),
        Some((sort_key, bytes)) => {
            let r = record::decode::<VersionRecord>("object version", &bytes)
                .map_err(|e| Outcome::Invalid(e.to_string()))?;
            Ok(Some(Found::Noncurrent(sort_key, r)))
        }
    }
}

/// Whether a version is the key's `null` version.
fn null_of(
    txn: &impl Txn,
    bucket: BucketId,
    key: &str,
    current: Option<&ObjectEntry>,
) -> Result<Option<Found>, Outcome> {
    if let Some(c) = current
        && c.null_version
    {
        return Ok(Some(Found::Current(c.clone())));
    }
    find(txn, bucket, key, Some(VersionRef::Null))
        .map(|f| f.filter(|f| !matches!(f, Found::Current(_))))
}

fn put_noncurrent(txn: &mut impl Txn, bucket: BucketId, key: &str, r: &VersionRecord) {
    let sort_key = keys::version_sort_key(key, r.seq());
    txn.put(
        keys::version_id(bucket, r.version()),
        record::encode(&sort_key),
    );
    if r.is_null() {
        txn.put(keys::null_version(bucket, key), record::encode(&sort_key));
    }
    txn.put(
        MetaKey::new(Table::Versions, bucket.to_hex(), sort_key),
        record::encode(r),
    );
}

fn remove_noncurrent(
    txn: &mut impl Txn,
    bucket: BucketId,
    key: &str,
    sort_key: &str,
    r: &VersionRecord,
) {
    txn.delete(MetaKey::new(Table::Versions, bucket.to_hex(), sort_key));
    txn.delete(keys::version_id(bucket, r.version()));
    if r.is_null() {
        txn.delete(keys::null_version(bucket, key));
    }
}

/// Remove a version found by [`find`] and everything it holds: its data
/// (references dropped), its records, its usage. The key's newest
/// remaining version becomes current if it is an object.
fn remove(txn: &mut impl Txn, bucket: BucketId, key: &str, found: &Found) -> Result<(), Outcome> {
    let object = match found {
        Found::Current(e) => {
            txn.delete(keys::object(bucket, key));
            Some(e)
        }
        Found::Noncurrent(sort_key, r) => {
            remove_noncurrent(txn, bucket, key, sort_key, r);
            match r {
                VersionRecord::Object(e) => Some(e),
                VersionRecord::DeleteMarker(_) => None,
            }
        }
    };
    if let Some(e) = object {
        drop_data(txn, bucket, e)?;
        account(
            txn,
            bucket,
            Delta {
                objects: -1,
                bytes: -(e.size as i64),
                ..Delta::default()
            },
        )?;
    }
    promote(txn, bucket, key)
}

/// With no current object, the newest version becomes current if it is an
/// object (a removed delete marker uncovers the version before it).
fn promote(txn: &mut impl Txn, bucket: BucketId, key: &str) -> Result<(), Outcome> {
    if txn.get(&keys::object(bucket, key)).is_some() {
        return Ok(());
    }
    if let Some(Found::Noncurrent(sort_key, r)) = newest_noncurrent(txn, bucket, key)?
        && let VersionRecord::Object(mut e) = r.clone()
    {
        remove_noncurrent(txn, bucket, key, &sort_key, &r);
        e.noncurrent_since_ms = None;
        txn.put(keys::object(bucket, key), record::encode(&e));
    }
    Ok(())
}

/// The current object becomes a noncurrent version, replaced at `since_ms`.
fn demote(txn: &mut impl Txn, bucket: BucketId, key: &str, mut e: ObjectEntry, since_ms: u64) {
    e.noncurrent_since_ms = Some(since_ms);
    txn.delete(keys::object(bucket, key));
    put_noncurrent(txn, bucket, key, &VersionRecord::Object(e));
}

/// When a retention of `days` or `years` from `from_ms` ends.
fn retention_end(from_ms: u64, days: Option<u32>, years: Option<u32>) -> u64 {
    // A year of the default retention is 365 days, as S3 counts it.
    let days = u64::from(days.unwrap_or(0)) + 365 * u64::from(years.unwrap_or(0));
    from_ms.saturating_add(days.saturating_mul(DAY_MS))
}

/// The outcome of a write that made version `e`.
fn written(settings: &BucketSettings, e: &ObjectEntry) -> Outcome {
    match settings.versioning {
        Versioning::Unversioned => Outcome::Ok,
        Versioning::Enabled | Versioning::Suspended => Outcome::Versioned {
            version_id: e.version_id(),
        },
    }
}

/// Make `entry` the current object of `key` (its condition was checked),
/// as the bucket's versioning says: enabled, the current object becomes a
/// noncurrent version; otherwise the new version is `null` and replaces
/// the key's `null` version wherever it is. `extra` is more usage to
/// account in the same apply.
pub(super) fn put(
    txn: &mut impl Txn,
    bucket: BucketId,
    key: &str,
    mut entry: ObjectEntry,
    seq: u64,
    extra: Delta,
) -> Result<Outcome, Outcome> {
    let settings = settings(txn, bucket)?;
    if !settings.object_lock && (entry.retention.is_some() || entry.legal_hold) {
        return Ok(Outcome::NoObjectLock);
    }
    let current: Option<ObjectEntry> = read(txn, &keys::object(bucket, key))?;
    entry.seq = seq;
    entry.null_version = settings.versioning != Versioning::Enabled;
    entry.noncurrent_since_ms = None;
    if settings.object_lock
        && entry.retention.is_none()
        && let Some(d) = settings.default_retention
    {
        entry.retention = Some(Retention {
            mode: d.mode,
            until_ms: retention_end(entry.last_modified_ms, d.days, d.years),
        });
    }
    let replaced = if entry.null_version {
        null_of(txn, bucket, key, current.as_ref())?
    } else {
        None
    };
    // Overwriting removes the null version: not while it is locked.
    if replaced
        .as_ref()
        .and_then(found_object)
        .is_some_and(|e| locked(e, entry.last_modified_ms, false))
    {
        return Ok(Outcome::ObjectLocked);
    }
    let (gone_objects, gone_bytes) = match &replaced {
        Some(Found::Current(e)) | Some(Found::Noncurrent(_, VersionRecord::Object(e))) => {
            (1, e.size as i64)
        }
        _ => (0, 0),
    };
    admit(
        txn,
        bucket,
        1 - gone_objects,
        entry.size as i64 - gone_bytes,
    )?;
    match replaced {
        Some(Found::Current(old)) => drop_data(txn, bucket, &old)?,
        Some(Found::Noncurrent(sort_key, r)) => {
            remove_noncurrent(txn, bucket, key, &sort_key, &r);
            if let VersionRecord::Object(old) = &r {
                drop_data(txn, bucket, old)?;
            }
            if let Some(c) = current {
                demote(txn, bucket, key, c, entry.last_modified_ms);
            }
        }
        None => {
            if let Some(c) = current {
                demote(txn, bucket, key, c, entry.last_modified_ms);
            }
        }
    }
    account(
        txn,
        bucket,
        Delta {
            objects: extra.objects + 1 - gone_objects,
            bytes: extra.bytes + entry.size as i64 - gone_bytes,
            ..extra
        },
    )?;
    let out = written(&settings, &entry);
    txn.put(keys::object(bucket, key), record::encode(&entry));
    Ok(out)
}

/// One deletion, after its condition held.
pub(super) struct Delete<'a> {
    pub bucket: BucketId,
    pub key: &'a str,
    /// The version to remove; `None`: the key's latest, as versioning says.
    pub version: Option<VersionRef>,
    /// The delete marker it makes, when it makes one.
    pub marker: DeleteMarker,
    /// The caller may bypass GOVERNANCE retention and asked to.
    pub bypass_governance: bool,
}

/// Delete as S3 does: a named version is removed for good (a missing one
/// is not an error); otherwise an unversioned bucket's object is removed,
/// and a versioned bucket's key gets a delete marker (`null` while
/// suspended, replacing the `null` version).
pub(super) fn delete(txn: &mut impl Txn, d: Delete<'_>) -> Result<Outcome, Outcome> {
    let Delete {
        bucket,
        key,
        version,
        mut marker,
        bypass_governance,
    } = d;
    let settings = settings(txn, bucket)?;
    if let Some(which) = version {
        let found = find(txn, bucket, key, Some(which))?;
        if let Some(Found::Current(e) | Found::Noncurrent(_, VersionRecord::Object(e))) = &found
            && locked(e, marker.last_modified_ms, bypass_governance)
        {
            return Ok(Outcome::ObjectLocked);
        }
        let delete_marker = matches!(
            found,
            Some(Found::Noncurrent(_, VersionRecord::DeleteMarker(_)))
        );
        if let Some(f) = &found {
            remove(txn, bucket, key, f)?;
        }
        let version_id = match which {
            VersionRef::Null => "null".to_owned(),
            VersionRef::Id(v) => v.to_hex(),
        };
        return Ok(Outcome::Removed {
            version_id: Some(version_id),
            delete_marker,
        });
    }
    let current: Option<ObjectEntry> = read(txn, &keys::object(bucket, key))?;
    match settings.versioning {
        // (Object Lock keeps versioning enabled: the two arms that remove
        // data never meet a locked version, but say so if one would.)
        Versioning::Unversioned | Versioning::Suspended
            if null_of(txn, bucket, key, current.as_ref())?
                .as_ref()
                .and_then(found_object)
                .is_some_and(|e| locked(e, marker.last_modified_ms, bypass_governance)) =>
        {
            Ok(Outcome::ObjectLocked)
        }
        Versioning::Unversioned => {
            if let Some(c) = current {
                remove(txn, bucket, key, &Found::Current(c))?;
            }
            Ok(Outcome::Ok)
        }
        Versioning::Enabled => {
            if let Some(c) = current {
                demote(txn, bucket, key, c, marker.last_modified_ms);
            }
            marker.null_version = false;
            put_noncurrent(
                txn,
                bucket,
                key,
                &VersionRecord::DeleteMarker(marker.clone()),
            );
            Ok(Outcome::Removed {
                version_id: Some(marker.version.to_hex()),
                delete_marker: true,
            })
        }
        Versioning::Suspended => {
            let replaced = null_of(txn, bucket, key, current.as_ref())?;
            let current_is_null = matches!(replaced, Some(Found::Current(_)));
            if let Some(f) = &replaced {
                // Not `remove`: nothing is promoted, the marker is latest.
                match f {
                    Found::Current(e) => {
                        txn.delete(keys::object(bucket, key));
                        drop_data(txn, bucket, e)?;
                        account_gone(txn, bucket, e)?;
                    }
                    Found::Noncurrent(sort_key, r) => {
                        remove_noncurrent(txn, bucket, key, sort_key, r);
                        if let VersionRecord::Object(e) = r {
                            drop_data(txn, bucket, e)?;
                            account_gone(txn, bucket, e)?;
                        }
                    }
                }
            }
            if let Some(c) = current
                && !current_is_null
            {
                demote(txn, bucket, key, c, marker.last_modified_ms);
            }
            marker.null_version = true;
            put_noncurrent(txn, bucket, key, &VersionRecord::DeleteMarker(marker));
            Ok(Outcome::Removed {
                version_id: Some("null".to_owned()),
                delete_marker: true,
            })
        }
    }
}

fn found_object(f: &Found) -> Option<&ObjectEntry> {
    match f {
        Found::Current(e) | Found::Noncurrent(_, VersionRecord::Object(e)) => Some(e),
        Found::Noncurrent(_, VersionRecord::DeleteMarker(_)) => None,
    }
}

/// Whether a version may not be removed at `now_ms`: under legal hold, or
/// under retention (GOVERNANCE unless bypassed).
pub fn locked(e: &ObjectEntry, now_ms: u64, bypass_governance: bool) -> bool {
    if e.legal_hold {
        return true;
    }
    match e.retention {
        Some(r) if r.until_ms > now_ms => match r.mode {
            LockMode::Compliance => true,
            LockMode::Governance => !bypass_governance,
        },
        _ => false,
    }
}

/// Change an object version where it is.
fn rewrite(
    txn: &mut impl Txn,
    bucket: BucketId,
    key: &str,
    found: Found,
    change: impl FnOnce(&mut ObjectEntry),
) -> Result<(), Outcome> {
    match found {
        Found::Current(mut e) => {
            change(&mut e);
            txn.put(keys::object(bucket, key), record::encode(&e));
        }
        Found::Noncurrent(sort_key, VersionRecord::Object(mut e)) => {
            change(&mut e);
            txn.put(
                MetaKey::new(Table::Versions, bucket.to_hex(), sort_key),
                record::encode(&VersionRecord::Object(e)),
            );
        }
        Found::Noncurrent(_, VersionRecord::DeleteMarker(_)) => return Err(Outcome::DeleteMarker),
    }
    Ok(())
}

/// The object version a retention or legal hold change is for.
fn lock_target(
    txn: &impl Txn,
    bucket: BucketId,
    key: &str,
    version: Option<VersionRef>,
) -> Result<Found, Outcome> {
    if !settings(txn, bucket)?.object_lock {
        return Err(Outcome::NoObjectLock);
    }
    match find(txn, bucket, key, version)? {
        None if version.is_some() => Err(Outcome::NoSuchVersion),
        None => Err(Outcome::NoSuchKey),
        Some(Found::Noncurrent(_, VersionRecord::DeleteMarker(_))) => Err(Outcome::DeleteMarker),
        Some(f) => Ok(f),
    }
}

/// Set or clear a version's retention. A running COMPLIANCE retention is
/// only ever extended (same mode, a later date); a running GOVERNANCE one
/// is extended or made COMPLIANCE, and anything else needs the bypass.
pub(super) fn set_retention(
    txn: &mut impl Txn,
    bucket: BucketId,
    key: &str,
    version: Option<VersionRef>,
    retention: Option<Retention>,
    bypass_governance: bool,
    now_ms: u64,
) -> Result<Outcome, Outcome> {
    let found = lock_target(txn, bucket, key, version)?;
    let current = found_object(&found).and_then(|e| e.retention);
    if let Some(old) = current.filter(|r| r.until_ms > now_ms) {
        let stronger = retention.is_some_and(|new| {
            new.until_ms >= old.until_ms
                && (new.mode == LockMode::Compliance || old.mode == LockMode::Governance)
        });
        let allowed = stronger || (old.mode == LockMode::Governance && bypass_governance);
        if !allowed {
            return Ok(Outcome::ObjectLocked);
        }
    }
    rewrite(txn, bucket, key, found, |e| e.retention = retention)?;
    Ok(Outcome::Ok)
}

/// Change what a version carries beside its bytes (its tags, its
/// grants); the outcome names the version.
pub(super) fn set_field(
    txn: &mut impl Txn,
    bucket: BucketId,
    key: &str,
    version: Option<VersionRef>,
    change: impl FnOnce(&mut ObjectEntry),
) -> Result<Outcome, Outcome> {
    let found = match find(txn, bucket, key, version)? {
        None if version.is_some() => return Ok(Outcome::NoSuchVersion),
        None => return Ok(Outcome::NoSuchKey),
        Some(f) => f,
    };
    let version_id = found.record().version_id();
    rewrite(txn, bucket, key, found, change)?;
    Ok(Outcome::Versioned { version_id })
}

/// Put a version under legal hold or release it.
pub(super) fn set_legal_hold(
    txn: &mut impl Txn,
    bucket: BucketId,
    key: &str,
    version: Option<VersionRef>,
    on: bool,
) -> Result<Outcome, Outcome> {
    let found = lock_target(txn, bucket, key, version)?;
    rewrite(txn, bucket, key, found, |e| e.legal_hold = on)?;
    Ok(Outcome::Ok)
}

/// Turn Object Lock on (only for a versioning-enabled bucket; never off
/// again) with a default retention.
pub(super) fn set_object_lock(
    txn: &mut impl Txn,
    bucket: BucketId,
    default_retention: Option<DefaultRetention>,
) -> Result<Outcome, Outcome> {
    let mut s = settings(txn, bucket)?;
    if !s.object_lock && s.versioning != Versioning::Enabled {
        return Ok(Outcome::InvalidBucketState);
    }
    s.object_lock = true;
    s.default_retention = default_retention;
    txn.put(keys::bucket_settings(bucket), record::encode(&s));
    Ok(Outcome::Ok)
}

fn account_gone(txn: &mut impl Txn, bucket: BucketId, e: &ObjectEntry) -> Result<(), Outcome> {
    account(
        txn,
        bucket,
        Delta {
            objects: -1,
            bytes: -(e.size as i64),
            ..Delta::default()
        },
    )
}

/// Set a bucket's versioning (S3 takes Enabled or Suspended; a bucket with
/// Object Lock stays Enabled).
pub(super) fn set_versioning(
    txn: &mut impl Txn,
    bucket: BucketId,
    state: Versioning,
) -> Result<Outcome, Outcome> {
    let mut s = settings(txn, bucket)?;
    if state == Versioning::Unversioned {
        return Ok(Outcome::Invalid(
            "a bucket cannot become unversioned".into(),
        ));
    }
    if s.object_lock && state != Versioning::Enabled {
        return Ok(Outcome::InvalidBucketState);
    }
    s.versioning = state;
    txn.put(keys::bucket_settings(bucket), record::encode(&s));
    Ok(Outcome::Ok)
}

/// One version as ListObjectVersions shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    /// Object key.
    pub key: String,
    /// S3 version id.
    pub version_id: String,
    /// Whether it is the key's latest version.
    pub is_latest: bool,
    /// A delete marker (size, ETag and checksum are then empty).
    pub delete_marker: bool,
    /// Its writer.
    pub owner: String,
    /// What a listing shows of an object version.
    pub entry: ListEntry,
}

/// One item of a versions listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionItem {
    /// A version or delete marker.
    Version(VersionEntry),
    /// A common prefix (ends with the delimiter).
    Prefix(String),
}

/// Where a versions listing starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionsFrom {
    /// After this key's versions (all of them, unless `version` is given).
    pub key: String,
    /// After this version of `key`.
    pub version: Option<VersionRef>,
}

/// Records of one table read in order, a page at a time.
struct Cursor<'a, K: KvRead + ?Sized> {
    kv: &'a K,
    table: Table,
    pk: String,
    prefix: String,
    after: Option<String>,
    page: std::collections::VecDeque<(String, Vec<u8>)>,
    done: bool,
    reads: &'a std::cell::Cell<usize>,
}

const CURSOR_PAGE: usize = 256;

impl<'a, K: KvRead + ?Sized> Cursor<'a, K> {
    fn peek(&mut self) -> Option<&(String, Vec<u8>)> {
        if self.page.is_empty() && !self.done {
            let page = self.kv.scan(
                self.table,
                &self.pk,
                &self.prefix,
                self.after.as_deref(),
                CURSOR_PAGE,
            );
            self.reads.set(self.reads.get() + page.len());
            self.done = page.len() < CURSOR_PAGE;
            if let Some((last, _)) = page.last() {
                self.after = Some(last.clone());
            }
            self.page.extend(page);
        }
        self.page.front()
    }

    fn skip_to(&mut self, after: String) {
        self.page.retain(|(k, _)| *k > after);
        if self.page.is_empty() {
            self.after = Some(after);
        }
    }
}

/// The key a [`Table::Versions`] sort key belongs to.
fn version_key(sort_key: &str) -> String {
    keys::parse_version(sort_key).map_or_else(String::new, |(k, _)| k)
}

/// A page of a bucket's versions: keys in order, each key's versions
/// newest first, rolled up into common prefixes by `delimiter`, at most
/// `limit` items; and whether more follow.
pub fn list(
    kv: &(impl KvRead + ?Sized),
    bucket: BucketId,
    prefix: &str,
    delimiter: Option<&str>,
    from: Option<VersionsFrom>,
    limit: usize,
) -> Result<(Vec<VersionItem>, bool), Outcome> {
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let pk = bucket.to_hex();
    let reads = std::cell::Cell::new(0);
    let mut objects = Cursor {
        kv,
        table: Table::Objects,
        pk: pk.clone(),
        prefix: prefix.to_owned(),
        after: None,
        page: Default::default(),
        done: false,
        reads: &reads,
    };
    let mut versions = Cursor {
        kv,
        table: Table::Versions,
        pk: pk.clone(),
        prefix: keys::escape_key(prefix),
        after: None,
        page: Default::default(),
        done: false,
        reads: &reads,
    };
    // The key of the item before this page's first: a version of the same
    // key is not its latest.
    let mut last_key: Option<String> = None;
    if let Some(from) = from {
        let common_prefix = from.version.is_none()
            && delimiter.is_some_and(|d| {
                from.key.len() > prefix.len()
                    && from.key.starts_with(prefix)
                    && from.key.ends_with(d)
            });
        if common_prefix {
            // A marker that is a common prefix skips everything under it.
            objects.after = Some(format!("{}{}", from.key, char::MAX));
            versions.after = Some(format!("{}{}", keys::escape_key(&from.key), char::MAX));
        }
        objects.after = objects.after.or(Some(from.key.clone()));
        versions.after = versions.after.or(Some(match from.version {
            // Past every version of the key: '~' sorts after hex digits.
            None => format!("{}~", keys::versions_of(&from.key)),
            Some(which) => match find(kv, bucket, &from.key, Some(which))? {
                Some(f) => keys::version_sort_key(&from.key, f.record().seq()),
                // The marker's version went meanwhile: start the key again
                // (listing a version twice rather than skipping one).
                None => keys::versions_of(&from.key),
            },
        }));
        if from.version.is_some() {
            last_key = Some(from.key);
        }
    }
    let mut items = Vec::new();
    loop {
        if reads.get() > MAX_VERSION_LIST_READS {
            return Ok((items, true));
        }
        let o = objects.peek().map(|(k, _)| k.clone());
        let v = versions.peek().map(|(k, _)| version_key(k));
        let (key, from_objects) = match (o, v) {
            (None, None) => return Ok((items, false)),
            (Some(o), None) => (o, true),
            (None, Some(v)) => (v, false),
            // The current object is a key's newest version.
            (Some(o), Some(v)) => {
                if o <= v {
                    (o, true)
                } else {
                    (v, false)
                }
            }
        };
        if items.len() == limit {
            return Ok((items, true));
        }
        if let Some(d) = delimiter
            && let Some(pos) = key[prefix.len()..].find(d)
        {
            let common = key[..prefix.len() + pos + d.len()].to_owned();
            objects.skip_to(format!("{common}{}", char::MAX));
            versions.skip_to(format!("{}{}", keys::escape_key(&common), char::MAX));
            last_key = Some(common.clone());
            items.push(VersionItem::Prefix(common));
            continue;
        }
        let is_latest = last_key.as_deref() != Some(key.as_str());
        let (_, bytes) = if from_objects {
            objects.page.pop_front()
        } else {
            versions.page.pop_front()
        }
        .expect("peeked");
        let record = if from_objects {
            VersionRecord::Object(
                record::decode::<ObjectEntry>("object entry", &bytes)
                    .map_err(|e| Outcome::Invalid(e.to_string()))?,
            )
        } else {
            record::decode::<VersionRecord>("object version", &bytes)
                .map_err(|e| Outcome::Invalid(e.to_string()))?
        };
        last_key = Some(key.clone());
        items.push(VersionItem::Version(entry_of(key, &record, is_latest)));
    }
}

fn entry_of(key: String, r: &VersionRecord, is_latest: bool) -> VersionEntry {
    match r {
        VersionRecord::Object(e) => VersionEntry {
            key: key.clone(),
            version_id: e.version_id(),
            is_latest,
            delete_marker: false,
            owner: e.owner.clone(),
            entry: ListEntry::of(key, e),
        },
        VersionRecord::DeleteMarker(m) => VersionEntry {
            key: key.clone(),
            version_id: r.version_id(),
            is_latest,
            delete_marker: true,
            owner: m.owner.clone(),
            entry: ListEntry {
                key,
                size: 0,
                etag: String::new(),
                last_modified_ms: m.last_modified_ms,
                checksum: None,
            },
        },
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::command::{Command, Deletion, MemoryKv, Request};
    use crate::record::{BucketStats, ObjectData, RequestId, VersionId};
    use std::collections::BTreeMap;

    pub(crate) const B: BucketId = BucketId([7; 16]);

    pub(crate) struct State {
        pub(crate) kv: MemoryKv,
        pub(crate) index: u64,
        next_version: u64,
    }

    impl State {
        pub(crate) fn new() -> Self {
            Self {
                kv: MemoryKv::default(),
                index: 0,
                next_version: 0,
            }
        }

        pub(crate) fn run(&mut self, command: Command) -> Outcome {
            self.index += 1;
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&self.index.to_le_bytes());
            self.kv.apply(
                self.index,
                &Request {
                    id: RequestId(id),
                    command,
                },
            )
        }

        pub(crate) fn fresh(&mut self) -> VersionId {
            self.next_version += 1;
            let mut v = [0u8; 16];
            v[8..].copy_from_slice(&self.next_version.to_be_bytes());
            VersionId(v)
        }

        /// PUT `key` with ETag `etag`; the version id reported.
        pub(crate) fn put(&mut self, key: &str, etag: &str) -> Option<String> {
            match self.put_locked(key, etag, None, false) {
                Outcome::Ok => None,
                Outcome::Versioned { version_id } => Some(version_id),
                other => panic!("put: {other:?}"),
            }
        }

        pub(crate) fn put_locked(
            &mut self,
            key: &str,
            etag: &str,
            retention: Option<Retention>,
            legal_hold: bool,
        ) -> Outcome {
            let version = self.fresh();
            let entry = ObjectEntry {
                version,
                size: etag.len() as u64,
                etag: etag.into(),
                last_modified_ms: self.index,
                content_type: None,
                headers: vec![],
                user_metadata: vec![],
                checksum: None,
                part_sizes: vec![],
                data: ObjectData::Inline(etag.as_bytes().to_vec()),
                seq: 0,
                null_version: false,
                owner: "o".into(),
                noncurrent_since_ms: None,
                tags: vec![],
                retention,
                legal_hold,
                grants: vec![],
            };
            self.run(Command::PutObject {
                bucket: B,
                key: key.into(),
                entry,
                condition: None,
            })
        }

        pub(crate) fn retain(
            &mut self,
            v: &str,
            retention: Option<Retention>,
            bypass: bool,
            now: u64,
        ) -> Outcome {
            self.run(Command::SetRetention {
                bucket: B,
                key: "k".into(),
                version: VersionRef::parse(v),
                retention,
                bypass_governance: bypass,
                now_ms: now,
            })
        }

        pub(crate) fn delete(&mut self, key: &str, version: Option<&str>) -> Outcome {
            self.delete_at(key, version, false, self.index)
        }

        pub(crate) fn delete_at(
            &mut self,
            key: &str,
            version: Option<&str>,
            bypass_governance: bool,
            now_ms: u64,
        ) -> Outcome {
            let marker = self.fresh();
            let out = self.run(Command::DeleteObjects {
                bucket: B,
                deletions: vec![Deletion {
                    key: key.into(),
                    version: version.map(|v| VersionRef::parse(v).expect("version id")),
                    if_match: None,
                    marker,
                    bypass_governance,
                }],
                now_ms,
                owner: "o".into(),
            });
            match out {
                Outcome::Deleted(mut each) => each.pop().expect("one"),
                other => panic!("delete: {other:?}"),
            }
        }

        pub(crate) fn versioning(&mut self, state: Versioning) {
            assert_eq!(
                self.run(Command::SetVersioning { bucket: B, state }),
                Outcome::Ok
            );
        }

        /// Every version as (key, version id, latest, ETag or "marker"),
        /// read in pages of `page`.
        pub(crate) fn listing(
            &self,
            prefix: &str,
            page: usize,
        ) -> Vec<(String, String, bool, String)> {
            let mut out = Vec::new();
            let mut from = None;
            loop {
                let (items, more) = list(&self.kv, B, prefix, None, from.clone(), page).unwrap();
                assert!(items.len() <= page);
                for item in items {
                    let VersionItem::Version(v) = item else {
                        panic!("no delimiter, no prefixes")
                    };
                    from = Some(VersionsFrom {
                        key: v.key.clone(),
                        version: VersionRef::parse(&v.version_id),
                    });
                    let what = if v.delete_marker {
                        "marker".to_owned()
                    } else {
                        v.entry.etag
                    };
                    out.push((v.key, v.version_id, v.is_latest, what));
                }
                if !more {
                    return out;
                }
            }
        }

        pub(crate) fn read(&self, key: &str, version: Option<&str>) -> Option<String> {
            let which = version.map(|v| VersionRef::parse(v).unwrap());
            match lookup(&self.kv, B, key, which).unwrap()? {
                (VersionRecord::Object(e), _) => Some(e.etag),
                (VersionRecord::DeleteMarker(_), _) => Some("marker".into()),
            }
        }

        pub(crate) fn stats(&self) -> BucketStats {
            self.kv
                .get(&keys::bucket_stats(B))
                .map(|b| record::decode("stats", &b).unwrap())
                .unwrap_or_default()
        }
    }

    #[test]
    fn enabled_versioning_keeps_every_version_and_markers_hide_them() {
        let mut s = State::new();
        s.versioning(Versioning::Enabled);
        let v1 = s.put("k", "a").unwrap();
        let v2 = s.put("k", "bb").unwrap();
        assert_ne!(v1, v2);
        assert_eq!(s.read("k", None).as_deref(), Some("bb"));
        assert_eq!(s.read("k", Some(&v1)).as_deref(), Some("a"));
        let Outcome::Removed {
            version_id: Some(m),
            delete_marker: true,
        } = s.delete("k", None)
        else {
            panic!("a delete marker")
        };
        assert_eq!(s.read("k", None).as_deref(), Some("marker"));
        assert_eq!(
            s.listing("", 1000),
            vec![
                ("k".into(), m.clone(), true, "marker".into()),
                ("k".into(), v2.clone(), false, "bb".into()),
                ("k".into(), v1.clone(), false, "a".into()),
            ]
        );
        // Both versions are stored and counted.
        assert_eq!((s.stats().objects, s.stats().bytes), (2, 3));
        // Removing the marker uncovers the version before it.
        assert_eq!(
            s.delete("k", Some(&m)),
            Outcome::Removed {
                version_id: Some(m.clone()),
                delete_marker: true
            }
        );
        assert_eq!(s.read("k", None).as_deref(), Some("bb"));
        s.delete("k", Some(&v2));
        assert_eq!(s.read("k", None).as_deref(), Some("a"));
        assert_eq!((s.stats().objects, s.stats().bytes), (1, 1));
        // A version that is not there: nothing to do, not an error.
        assert!(s.delete("k", Some(&v2)).succeeded());
        s.delete("k", Some(&v1));
        assert_eq!(s.read("k", None), None);
        assert_eq!(s.listing("", 1000), vec![]);
        assert_eq!((s.stats().objects, s.stats().bytes), (0, 0));
        // Nothing is left of the key anywhere.
        let left: Vec<_> =
            s.kv.0
                .keys()
                .filter(|k| {
                    matches!(
                        k.table,
                        Table::Objects | Table::Versions | Table::VersionIds | Table::NullVersions
                    )
                })
                .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_null_version_is_replaced_wherever_it_is() {
        let mut s = State::new();
        // Written before versioning: the null version.
        assert_eq!(s.put("k", "n0"), None);
        s.versioning(Versioning::Enabled);
        let v1 = s.put("k", "v1").unwrap();
        assert_eq!(s.read("k", Some("null")).as_deref(), Some("n0"));
        s.versioning(Versioning::Suspended);
        // Suspended: the new null version replaces the old (noncurrent) one.
        assert_eq!(s.put("k", "n1").as_deref(), Some("null"));
        assert_eq!(
            s.listing("", 1000),
            vec![
                ("k".into(), "null".into(), true, "n1".into()),
                ("k".into(), v1.clone(), false, "v1".into()),
            ]
        );
        // A delete makes the null version a delete marker.
        assert_eq!(
            s.delete("k", None),
            Outcome::Removed {
                version_id: Some("null".into()),
                delete_marker: true
            }
        );
        assert_eq!(
            s.listing("", 1000),
            vec![
                ("k".into(), "null".into(), true, "marker".into()),
                ("k".into(), v1.clone(), false, "v1".into()),
            ]
        );
        // n0 and n1 went with their data: only v1 is stored.
        assert_eq!((s.stats().objects, s.stats().bytes), (1, 2));
        let drops = s.kv.0.keys().filter(|k| k.table == Table::Drops).count();
        assert_eq!(drops, 0, "inline data holds no references");
    }

    #[test]
    fn an_unversioned_bucket_writes_nothing_but_its_objects() {
        let mut s = State::new();
        s.put("a", "1");
        s.put("a", "2");
        assert_eq!(s.delete("b", None), Outcome::Ok);
        assert_eq!(
            s.listing("", 10),
            vec![("a".into(), "null".into(), true, "2".into())]
        );
        assert_eq!(s.delete("a", None), Outcome::Ok);
        assert!(s.kv.0.keys().all(|k| !matches!(
            k.table,
            Table::Objects | Table::Versions | Table::VersionIds | Table::NullVersions
        )));
    }

    #[test]
    fn keys_versions_sort_as_the_keys_do_whatever_they_hold() {
        let mut s = State::new();
        s.versioning(Versioning::Enabled);
        // NUL and other low bytes in keys, prefixes of each other.
        let names = ["a", "a\0", "a\0\u{1}", "a\0b", "a\u{1}", "a/", "ab", "b"];
        for n in names.iter().rev() {
            s.put(n, "x");
            s.delete(n, None);
        }
        let listed: Vec<String> = s.listing("", 3).into_iter().map(|v| v.0).collect();
        let mut want: Vec<String> = names
            .iter()
            .flat_map(|n| [n.to_string(), n.to_string()])
            .collect();
        want.sort();
        assert_eq!(listed, want);
        let under: Vec<String> = s.listing("a\0", 2).into_iter().map(|v| v.0).collect();
        assert_eq!(under.len(), 6, "{under:?}");
        for (n, (k, _)) in names.iter().zip(names.iter().map(|n| (n.to_string(), ()))) {
            assert_eq!(
                keys::parse_version(&keys::version_sort_key(n, 42)),
                Some((k, 42))
            );
        }
    }

    #[test]
    fn delimiters_roll_versions_up_and_markers_page_through_them() {
        let mut s = State::new();
        s.versioning(Versioning::Enabled);
        for k in ["d/1", "d/2", "e", "f/1"] {
            s.put(k, "x");
            s.put(k, "y");
        }
        let (items, more) = list(&s.kv, B, "", Some("/"), None, 2).unwrap();
        assert!(more);
        assert_eq!(
            items[0],
            VersionItem::Prefix("d/".into()),
            "one prefix for four versions"
        );
        let VersionItem::Version(e) = &items[1] else {
            panic!()
        };
        assert_eq!((e.key.as_str(), e.is_latest), ("e", true));
        let from = VersionsFrom {
            key: "e".into(),
            version: VersionRef::parse(&e.version_id),
        };
        let (items, more) = list(&s.kv, B, "", Some("/"), Some(from), 10).unwrap();
        assert!(!more);
        let VersionItem::Version(e2) = &items[0] else {
            panic!()
        };
        assert_eq!((e2.key.as_str(), e2.is_latest), ("e", false));
        assert_eq!(items[1], VersionItem::Prefix("f/".into()));
        // A common prefix as the marker skips what is under it.
        let from = VersionsFrom {
            key: "d/".into(),
            version: None,
        };
        let (items, _) = list(&s.kv, B, "", Some("/"), Some(from), 10).unwrap();
        assert!(matches!(&items[0], VersionItem::Version(v) if v.key == "e"));
    }

    pub(crate) fn locked_bucket(default_retention: Option<DefaultRetention>) -> State {
        let mut s = State::new();
        let settings = BucketSettings {
            versioning: Versioning::Enabled,
            object_lock: true,
            default_retention,
        };
        assert_eq!(
            s.run(Command::InitBucket {
                bucket: B,
                settings
            }),
            Outcome::Ok
        );
        s
    }

    fn version_of(o: Outcome) -> String {
        match o {
            Outcome::Versioned { version_id } => version_id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compliance_is_never_shortened_or_bypassed_before_its_date() {
        const UNTIL: u64 = 1_000_000;
        let mut s = locked_bucket(None);
        let compliance = Retention {
            mode: LockMode::Compliance,
            until_ms: UNTIL,
        };
        let v = version_of(s.put_locked("k", "a", Some(compliance), false));
        let before = UNTIL - 1;
        for bypass in [false, true] {
            assert_eq!(
                s.delete_at("k", Some(&v), bypass, before),
                Outcome::ObjectLocked
            );
        }
        let shorter = Retention {
            until_ms: UNTIL - 10,
            ..compliance
        };
        let governance = Retention {
            mode: LockMode::Governance,
            until_ms: UNTIL + 10,
        };
        for (r, bypass) in [
            (Some(shorter), true),
            (Some(governance), true),
            (None, true),
            (None, false),
        ] {
            assert_eq!(
                s.retain(&v, r, bypass, before),
                Outcome::ObjectLocked,
                "{r:?}"
            );
        }
        // Versioning stays enabled; a delete marker hides, removes nothing.
        assert_eq!(
            s.run(Command::SetVersioning {
                bucket: B,
                state: Versioning::Suspended
            }),
            Outcome::InvalidBucketState
        );
        assert!(matches!(
            s.delete_at("k", None, true, before),
            Outcome::Removed { .. }
        ));
        // Extending is allowed; the version goes only after the new date.
        let longer = Retention {
            until_ms: UNTIL + 100,
            ..compliance
        };
        assert_eq!(s.retain(&v, Some(longer), false, before), Outcome::Ok);
        assert_eq!(
            s.delete_at("k", Some(&v), false, UNTIL + 50),
            Outcome::ObjectLocked
        );
        assert!(s.delete_at("k", Some(&v), false, UNTIL + 100).succeeded());
        assert_eq!(s.read("k", Some(&v)), None);
    }

    #[test]
    fn governance_yields_to_the_bypass_and_legal_holds_to_nothing() {
        let mut s = locked_bucket(Some(DefaultRetention {
            mode: LockMode::Governance,
            days: Some(1),
            years: None,
        }));
        // The bucket's default applies to a version that names none.
        let v = version_of(s.put_locked("k", "a", None, false));
        let Some(Found::Current(e)) = find(&s.kv, B, "k", VersionRef::parse(&v)).unwrap() else {
            panic!()
        };
        assert_eq!(
            e.retention,
            Some(Retention {
                mode: LockMode::Governance,
                until_ms: e.last_modified_ms + DAY_MS
            })
        );
        assert_eq!(s.delete_at("k", Some(&v), false, 10), Outcome::ObjectLocked);
        // GOVERNANCE can become COMPLIANCE without the bypass, and is
        // shortened only with it.
        assert_eq!(s.retain(&v, None, false, 10), Outcome::ObjectLocked);
        assert_eq!(s.retain(&v, None, true, 10), Outcome::Ok);
        // A legal hold blocks every removal until it is released.
        assert_eq!(
            s.run(Command::SetLegalHold {
                bucket: B,
                key: "k".into(),
                version: VersionRef::parse(&v),
                on: true
            }),
            Outcome::Ok
        );
        assert_eq!(s.delete_at("k", Some(&v), true, 10), Outcome::ObjectLocked);
        s.run(Command::SetLegalHold {
            bucket: B,
            key: "k".into(),
            version: VersionRef::parse(&v),
            on: false,
        });
        assert!(s.delete_at("k", Some(&v), false, 10).succeeded());
    }

    #[test]
    fn locks_need_a_bucket_with_object_lock() {
        let mut s = State::new();
        let r = Some(Retention {
            mode: LockMode::Governance,
            until_ms: 5,
        });
        assert_eq!(s.put_locked("k", "a", r, false), Outcome::NoObjectLock);
        assert_eq!(s.put_locked("k", "a", None, true), Outcome::NoObjectLock);
        assert_eq!(s.read("k", None), None, "a refused write writes nothing");
        // Object Lock comes on only over enabled versioning.
        let lock = Command::SetObjectLock {
            bucket: B,
            default_retention: None,
        };
        assert_eq!(s.run(lock.clone()), Outcome::InvalidBucketState);
        s.versioning(Versioning::Enabled);
        assert_eq!(s.run(lock), Outcome::Ok);
        let v = version_of(s.put_locked("k", "a", r, false));
        assert_eq!(s.retain(&v, None, false, 1), Outcome::ObjectLocked);
        // On a delete marker there is nothing to lock.
        let Outcome::Removed {
            version_id: Some(m),
            ..
        } = s.delete("k", None)
        else {
            panic!()
        };
        assert_eq!(s.retain(&m, r, false, 1), Outcome::DeleteMarker);
    }

    /// splitmix64: small, seeded, enough for choosing operations.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random writes, deletes, version deletes and versioning changes, and
    /// after each, the listing (in random pages) and every version's read
    /// are what S3's model of versions says.
    #[test]
    fn versions_follow_the_model_under_random_operations() {
        let seed = std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("SEED={seed}");
        let mut rng = Rng(seed);
        let mut s = State::new();
        // Per key: (version id, ETag or "marker"), newest first.
        let mut model: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut mode = Versioning::Unversioned;
        for step in 0..600 {
            let key = format!("k{}", rng.below(6));
            let versions = model.entry(key.clone()).or_default();
            match rng.below(10) {
                0 => {
                    mode = if rng.below(2) == 0 {
                        Versioning::Enabled
                    } else {
                        Versioning::Suspended
                    };
                    s.versioning(mode);
                }
                1..=4 => {
                    let etag = format!("e{step}");
                    let id = s.put(&key, &etag);
                    if mode == Versioning::Enabled {
                        versions.insert(0, (id.expect("versioned"), etag));
                    } else {
                        versions.retain(|(v, _)| v != "null");
                        versions.insert(0, ("null".into(), etag));
                    }
                }
                5..=6 => {
                    let out = s.delete(&key, None);
                    match mode {
                        Versioning::Unversioned => versions.retain(|(v, _)| v != "null"),
                        Versioning::Enabled => {
                            let Outcome::Removed {
                                version_id: Some(m),
                                ..
                            } = out
                            else {
                                panic!("SEED={seed}: {out:?}")
                            };
                            versions.insert(0, (m, "marker".into()));
                        }
                        Versioning::Suspended => {
                            versions.retain(|(v, _)| v != "null");
                            versions.insert(0, ("null".into(), "marker".into()));
                        }
                    }
                }
                _ => {
                    if versions.is_empty() {
                        continue;
                    }
                    let i = rng.below(versions.len() as u64) as usize;
                    let (v, _) = versions.remove(i);
                    assert!(s.delete(&key, Some(&v)).succeeded(), "SEED={seed}");
                }
            }
            let want: Vec<(String, String, bool, String)> = model
                .iter()
                .flat_map(|(k, vs)| {
                    vs.iter()
                        .enumerate()
                        .map(|(i, (v, e))| (k.clone(), v.clone(), i == 0, e.clone()))
                })
                .collect();
            let page = 1 + rng.below(5) as usize;
            assert_eq!(s.listing("", page), want, "SEED={seed} step {step}");
            for (k, vs) in &model {
                assert_eq!(
                    s.read(k, None),
                    vs.first().map(|(_, e)| e.clone()),
                    "SEED={seed} step {step} {k}"
                );
                for (v, e) in vs {
                    assert_eq!(s.read(k, Some(v)).as_ref(), Some(e), "SEED={seed} {k} {v}");
                }
            }
            // The current objects (what ListObjects lists) are the keys
            // whose latest version is an object.
            let current: Vec<(String, String)> =
                s.kv.scan(Table::Objects, &B.to_hex(), "", None, 1000)
                    .into_iter()
                    .map(|(k, v)| {
                        let e: ObjectEntry = record::decode("entry", &v).unwrap();
                        (k, e.etag)
                    })
                    .collect();
            let latest: Vec<(String, String)> = model
                .iter()
                .filter_map(|(k, vs)| {
                    let (_, e) = vs.first()?;
                    (e != "marker").then(|| (k.clone(), e.clone()))
                })
                .collect();
            assert_eq!(current, latest, "SEED={seed} step {step}");
            let objects = model
                .values()
                .flatten()
                .filter(|(_, e)| e != "marker")
                .count() as u64;
            assert_eq!(s.stats().objects, objects, "SEED={seed} step {step}");
        }
    }
}
