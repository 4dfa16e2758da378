//! Bucket policies: the JSON policy language as S3 reads it, validated
//! when put, and one evaluation function (`docs/design/access.md`).
//!
//! Principals are access key ids (S3's canonical user ids are Cairn's
//! access key ids): `"*"`, `{"AWS": "*"}`, `{"AWS": [ids or ARNs ending in
//! /id]}`, `{"CanonicalUser": id}`. Actions are `s3:` actions with `*` and
//! `?` wildcards; resources are `arn:aws:s3:::bucket[/key]` ARNs of the
//! policy's own bucket, with wildcards. Conditions take the operators of
//! [`Op`] (each also as `...IfExists`) on the request's condition keys.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Largest policy document (S3's limit).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;
/// Most statements read from one policy (well above what 20 KiB holds in
/// practice, a bound all the same).
pub const MAX_STATEMENTS: usize = 1000;

/// Why a policy was refused (`400 MalformedPolicy` with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed<T>(why: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(why.into()))
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, whatever else grants.
    Deny,
}

/// Who a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    /// Everyone, anonymous callers included.
    Any,
    /// These access key ids.
    Keys(Vec<String>),
}

impl Principals {
    fn matches(&self, who: Option<&str>) -> bool {
        match self {
            Self::Any => true,
            Self::Keys(keys) => who.is_some_and(|w| keys.iter().any(|k| k == w)),
        }
    }
}

/// A list of patterns, or its negation (`NotAction`, `NotResource`,
/// `NotPrincipal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Either<T> {
    /// The patterns.
    pub items: T,
    /// Whether the statement applies to what they do *not* match.
    pub not: bool,
}

/// A condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Exact, case-sensitive.
    StringEquals,
    /// Negated [`Op::StringEquals`].
    StringNotEquals,
    /// Exact, case-insensitive.
    StringEqualsIgnoreCase,
    /// Negated [`Op::StringEqualsIgnoreCase`].
    StringNotEqualsIgnoreCase,
    /// With `*` and `?` wildcards.
    StringLike,
    /// Negated [`Op::StringLike`].
    StringNotLike,
    /// Numbers.
    NumericEquals,
    /// Numbers.
    NumericNotEquals,
    /// Numbers.
    NumericLessThan,
    /// Numbers.
    NumericLessThanEquals,
    /// Numbers.
    NumericGreaterThan,
    /// Numbers.
    NumericGreaterThanEquals,
    /// `true` / `false`.
    Bool,
    /// In one of the CIDR ranges.
    IpAddress,
    /// In none of the CIDR ranges.
    NotIpAddress,
    /// Whether the key is absent (`true`) or present (`false`).
    Null,
    /// ARNs, exact.
    ArnEquals,
    /// ARNs, with wildcards.
    ArnLike,
    /// Negated [`Op::ArnEquals`].
    ArnNotEquals,
    /// Negated [`Op::ArnLike`].
    ArnNotLike,
}

impl Op {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "StringEquals" => Self::StringEquals,
            "StringNotEquals" => Self::StringNotEquals,
            "StringEqualsIgnoreCase" => Self::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Self::StringNotEqualsIgnoreCase,
            "StringLike" => Self::StringLike,
            "StringNotLike" => Self::StringNotLike,
            "NumericEquals" => Self::NumericEquals,
            "NumericNotEquals" => Self::NumericNotEquals,
            "NumericLessThan" => Self::NumericLessThan,
            "NumericLessThanEquals" => Self::NumericLessThanEquals,
            "NumericGreaterThan" => Self::NumericGreaterThan,
            "NumericGreaterThanEquals" => Self::NumericGreaterThanEquals,
            "Bool" => Self::Bool,
            "IpAddress" => Self::IpAddress,
            "NotIpAddress" => Self::NotIpAddress,
            "Null" => Self::Null,
            "ArnEquals" => Self::ArnEquals,
            "ArnLike" => Self::ArnLike,
            "ArnNotEquals" => Self::ArnNotEquals,
            "ArnNotLike" => Self::ArnNotLike,
            _ => return None,
        })
    }

    /// Whether it is satisfied by what does not match (a negated operator
    /// holds when no value matches).
    fn negated(self) -> bool {
        matches!(
            self,
            Self::StringNotEquals
                | Self::StringNotEqualsIgnoreCase
                | Self::StringNotLike
                | Self::NumericNotEquals
                | Self::NotIpAddress
                | Self::ArnNotEquals
                | Self::ArnNotLike
        )
    }
}

/// One condition: `op` on `key` against `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The operator.
    pub op: Op,
    /// `...IfExists`: holds when the key is absent.
    pub if_exists: bool,
    /// The condition key, lower-case.
    pub key: String,
    /// The values (any may match).
    pub values: Vec<String>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Its id, if any.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// `Principal` or `NotPrincipal`.
    pub principal: Either<Principals>,
    /// `Action` or `NotAction` patterns (lower-case).
    pub action: Either<Vec<String>>,
    /// `Resource` or `NotResource` patterns.
    pub resource: Either<Vec<String>>,
    /// All must hold.
    pub conditions: Vec<Condition>,
}

/// A parsed, validated bucket policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its statements.
    pub statements: Vec<Statement>,
}

/// What the policy says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A statement denies it.
    Deny,
    /// No statement applies.
    NotApplicable,
}

/// A request as a policy sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The caller's access key id; `None`: anonymous.
    pub principal: Option<&'a str>,
    /// The S3 action, e.g. `s3:GetObject`.
    pub action: &'a str,
    /// The resource ARN, e.g. `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    /// Condition keys (lower-case) and their values.
    pub context: &'a BTreeMap<String, Vec<String>>,
}

/// The ARN of a bucket, or of an object in it.
pub fn arn(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
        None => format!("arn:aws:s3:::{bucket}"),
    }
}

/// `*` matches any run of characters, `?` any one.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point: linear in practice,
    // never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, Malformed> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => malformed(format!("Invalid {what}")),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        _ => malformed(format!("Invalid {what}")),
    }
}

/// An access key id from a principal entry (`id`, or an ARN ending in
/// `/id` or `:id`).
fn principal_id(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix("arn:aws:iam::") {
        let id = rest.rsplit(['/', ':']).next()?;
        return (!id.is_empty() && id != "root")
            .then(|| id.to_owned())
            .or_else(|| {
                // `arn:aws:iam::ACCOUNT:root`: Cairn's accounts are its keys.
                rest.split(':')
                    .next()
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
            });
    }
    (!s.contains(['*', '?', ' '])).then(|| s.to_owned())
}

fn principals(v: &Value) -> Result<Principals, Malformed> {
    match v {
        Value::String(s) if s == "*" => Ok(Principals::Any),
        Value::Object(m) if !m.is_empty() => {
            let mut keys = Vec::new();
            for (kind, ids) in m {
                if kind != "AWS" && kind != "CanonicalUser" {
                    return malformed("Invalid principal in policy");
                }
                for id in strings(ids, "principal in policy")? {
                    if id == "*" {
                        if kind == "AWS" {
                            return Ok(Principals::Any);
                        }
                        return malformed("Invalid principal in policy");
                    }
                    match principal_id(&id) {
                        Some(k) => keys.push(k),
                        None => return malformed("Invalid principal in policy"),
                    }
                }
            }
            Ok(Principals::Keys(keys))
        }
        _ => malformed("Invalid principal in policy"),
    }
}

fn conditions(v: &Value) -> Result<Vec<Condition>, Malformed> {
    let Value::Object(ops) = v else {
        return malformed("Invalid Condition");
    };
    let mut out = Vec::new();
    for (name, keys) in ops {
        let (base, if_exists) = match name.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (name.as_str(), false),
        };
        let Some(op) = Op::parse(base) else {
            return malformed(format!("Invalid Condition type : {name}"));
        };
        let Value::Object(keys) = keys else {
            return malformed("Invalid Condition");
        };
        for (key, values) in keys {
            let values = strings(values, "Condition value")?;
            let numeric = matches!(
                op,
                Op::NumericEquals
                    | Op::NumericNotEquals
                    | Op::NumericLessThan
                    | Op::NumericLessThanEquals
                    | Op::NumericGreaterThan
                    | Op::NumericGreaterThanEquals
            );
            let bad = match op {
                Op::IpAddress | Op::NotIpAddress => values
                    .iter()
                    .any(|c| cidr(c).is_none())
                    .then(|| format!("Invalid IP address in Condition: {values:?}")),
                Op::Bool | Op::Null => values
                    .iter()
                    .any(|b| b != "true" && b != "false")
                    .then(|| "Invalid Condition value: not a boolean".to_owned()),
                _ if numeric => values
                    .iter()
                    .any(|n| n.parse::<f64>().is_err())
                    .then(|| "Invalid Condition value: not a number".to_owned()),
                _ => None,
            };
            if let Some(why) = bad {
                return malformed(why);
            }
            out.push(Condition {
                op,
                if_exists,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(out)
}

/// Parse and validate `text` as the policy of `bucket`, as
/// PutBucketPolicy does.
pub fn parse(text: &str, bucket: &str) -> Result<Policy, Malformed> {
    if text.len() > MAX_POLICY_BYTES {
        return malformed("Policies must be less than 20 KB");
    }
    let doc: Value = serde_json::from_str(text)
        .map_err(|_| Malformed("This policy contains invalid Json".into()))?;
    let Value::Object(doc) = doc else {
        return malformed("This policy contains invalid Json");
    };
    for key in doc.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            return malformed(format!("Unknown field {key}"));
        }
    }
    if let Some(v) = doc.get("Version")
        && v != "2012-10-17"
        && v != "2008-10-17"
    {
        return malformed("The policy must contain a valid version string");
    }
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return malformed("Missing required field Statement"),
    };
    if statements.len() > MAX_STATEMENTS {
        return malformed("Policies must be less than 20 KB");
    }
    let bucket_arn = arn(bucket, None);
    let mut out = Vec::with_capacity(statements.len());
    for s in &statements {
        let Value::Object(s) = s else {
            return malformed("Statement is not an object");
        };
        for key in s.keys() {
            if !matches!(
                key.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return malformed(format!("Unknown field {key}"));
            }
        }
        let effect = match s.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return malformed("Invalid effect"),
        };
        let principal = match (s.get("Principal"), s.get("NotPrincipal")) {
            (Some(p), None) => Either {
                items: principals(p)?,
                not: false,
            },
            (None, Some(p)) => Either {
                items: principals(p)?,
                not: true,
            },
            (None, None) => return malformed("Missing required field Principal"),
            (Some(_), Some(_)) => return malformed("Invalid principal in policy"),
        };
        let action = match (s.get("Action"), s.get("NotAction")) {
            (Some(a), None) => Either {
                items: strings(a, "action")?,
                not: false,
            },
            (None, Some(a)) => Either {
                items: strings(a, "action")?,
                not: true,
            },
            _ => return malformed("Missing required field Action"),
        };
        for a in &action.items {
            let valid = a == "*"
                || a.strip_prefix("s3:").is_some_and(|rest| {
                    !rest.is_empty()
                        && rest
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
                });
            if !valid {
                return malformed("Policy has invalid action");
            }
        }
        let action = Either {
            items: action
                .items
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
            not: action.not,
        };
        let resource = match (s.get("Resource"), s.get("NotResource")) {
            (Some(r), None) => Either {
                items: strings(r, "resource")?,
                not: false,
            },
            (None, Some(r)) => Either {
                items: strings(r, "resource")?,
                not: true,
            },
            _ => return malformed("Missing required field Resource"),
        };
        for r in &resource.items {
            // A resource must be this bucket or under it.
            let ok = r == "*"
                || r == &bucket_arn
                || r.strip_prefix(&bucket_arn)
                    .is_some_and(|rest| rest.starts_with('/'))
                || (r.starts_with("arn:aws:s3:::")
                    && r.contains(['*', '?'])
                    && wildcard(r, &bucket_arn))
                || (r.starts_with("arn:aws:s3:::")
                    && r.contains(['*', '?'])
                    && wildcard(r, &format!("{bucket_arn}/x")));
            if !ok {
                return malformed("Policy has invalid resource");
            }
        }
        let conditions = match s.get("Condition") {
            None => Vec::new(),
            Some(c) => conditions(c)?,
        };
        out.push(Statement {
            sid: s.get("Sid").and_then(Value::as_str).map(str::to_owned),
            effect,
            principal,
            action,
            resource,
            conditions,
        });
    }
    Ok(Policy { statements: out })
}

/// A CIDR range (or a single address).
fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((addr, len))
}

fn in_cidr(ip: &str, range: &str) -> bool {
    let (Ok(ip), Some((net, len))) = (ip.parse::<IpAddr>(), cidr(range)) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn matches_value(op: Op, pattern: &str, value: &str) -> bool {
    match op {
        Op::StringEquals | Op::StringNotEquals | Op::ArnEquals | Op::ArnNotEquals => {
            pattern == value
        }
        Op::StringEqualsIgnoreCase | Op::StringNotEqualsIgnoreCase => {
            pattern.to_lowercase() == value.to_lowercase()
        }
        Op::StringLike | Op::StringNotLike | Op::ArnLike | Op::ArnNotLike => {
            wildcard(pattern, value)
        }
        Op::Bool => pattern.eq_ignore_ascii_case(value),
        Op::IpAddress | Op::NotIpAddress => in_cidr(value, pattern),
        Op::NumericEquals
        | Op::NumericNotEquals
        | Op::NumericLessThan
        | Op::NumericLessThanEquals
        | Op::NumericGreaterThan
        | Op::NumericGreaterThanEquals => {
            let (Ok(p), Ok(v)) = (pattern.parse::<f64>(), value.parse::<f64>()) else {
                return false;
            };
            match op {
                Op::NumericEquals | Op::NumericNotEquals => v == p,
                Op::NumericLessThan => v < p,
                Op::NumericLessThanEquals => v <= p,
                Op::NumericGreaterThan => v > p,
                _ => v >= p,
            }
        }
        Op::Null => false,
    }
}

impl Condition {
    fn holds(&self, context: &BTreeMap<String, Vec<String>>) -> bool {
        let present = context.get(&self.key).filter(|v| !v.is_empty());
        if self.op == Op::Null {
            let want_absent = self.values.iter().any(|v| v == "true");
            return want_absent == present.is_none();
        }
        let Some(values) = present else {
            // An absent key satisfies only `...IfExists` (and, as in IAM,
            // the negated operators).
            return self.if_exists || self.op.negated();
        };
        let any = values
            .iter()
            .any(|v| self.values.iter().any(|p| matches_value(self.op, p, v)));
        if self.op.negated() { !any } else { any }
    }
}

impl Statement {
    fn applies(&self, req: &Request<'_>) -> bool {
        let action = req.action.to_ascii_lowercase();
        let action_hit = self.action.items.iter().any(|p| wildcard(p, &action));
        let resource_hit = self
            .resource
            .items
            .iter()
            .any(|p| wildcard(p, req.resource));
        let principal_hit = self.principal.items.matches(req.principal);
        action_hit != self.action.not
            && resource_hit != self.resource.not
            && principal_hit != self.principal.not
            && self.conditions.iter().all(|c| c.holds(req.context))
    }
}

impl Policy {
    /// What the policy says of `req`: an explicit deny beats any allow.
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        let mut allowed = false;
        for s in &self.statements {
            if s.applies(req) {
                match s.effect {
                    Effect::Deny => return Decision::Deny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::NotApplicable
        }
    }

    /// Whether a condition of the policy reads a key starting with
    /// `prefix` (lower-case), e.g. `s3:existingobjecttag/`: whether it is
    /// worth gathering.
    pub fn reads_key_prefix(&self, prefix: &str) -> bool {
        self.statements
            .iter()
            .any(|s| s.conditions.iter().any(|c| c.key.starts_with(prefix)))
    }

    /// Whether the policy is public as S3 means it: an Allow statement
    /// for everyone (`*`, or a `NotPrincipal`) that no condition fixes to
    /// a known set of callers (a source address range narrower than the
    /// whole Internet, a source ARN, account, VPC or organization).
    pub fn is_public(&self) -> bool {
        const FIXING: [&str; 8] = [
            "aws:sourceip",
            "aws:sourcearn",
            "aws:sourceaccount",
            "aws:sourceowner",
            "aws:sourcevpc",
            "aws:sourcevpce",
            "aws:principalorgid",
            "aws:principalaccount",
        ];
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && (s.principal.not || s.principal.items == Principals::Any)
                && !s.conditions.iter().any(|c| {
                    FIXING.contains(&c.key.as_str())
                        && !c.if_exists
                        && match c.op {
                            Op::IpAddress => c
                                .values
                                .iter()
                                .all(|v| cidr(v).is_some_and(|(_, len)| len > 0)),
                            Op::StringEquals | Op::ArnEquals => true,
                            Op::StringLike | Op::ArnLike => {
                                c.values.iter().all(|v| !v.contains(['*', '?']))
                            }
                            _ => false,
                        }
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            m.entry(k.to_ascii_lowercase())
                .or_default()
                .push((*v).to_owned());
        }
        m
    }

    /// One case: who, action, resource, context -> expected decision.
    type Case<'a> = (
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        Decision,
    );

    fn check(policy: &str, public: bool, cases: &[Case<'_>]) {
        let p = parse(policy, "b").unwrap_or_else(|e| panic!("{e}: {policy}"));
        assert_eq!(p.is_public(), public, "public status of {policy}");
        for (who, action, resource, context, want) in cases {
            let context = ctx(context);
            let req = Request {
                principal: *who,
                action,
                resource,
                context: &context,
            };
            assert_eq!(
                p.evaluate(&req),
                *want,
                "{who:?} {action} {resource} {context:?}\n{policy}"
            );
        }
    }

    use Decision::{Allow, Deny, NotApplicable as Na};

    // The policies below are the examples of S3's "Bucket policy
    // examples" (user guide), with Cairn's access key ids as principals.

    #[test]
    fn read_only_for_anonymous_users() {
        check(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow",
                "Principal":"*","Action":["s3:GetObject","s3:GetObjectVersion"],
                "Resource":["arn:aws:s3:::b/*"]}]}"#,
            true,
            &[
                (None, "s3:GetObject", "arn:aws:s3:::b/k", &[], Allow),
                (
                    Some("GKANY"),
                    "s3:GetObjectVersion",
                    "arn:aws:s3:::b/a/b",
                    &[],
                    Allow,
                ),
                (None, "s3:PutObject", "arn:aws:s3:::b/k", &[], Na),
                (None, "s3:ListBucket", "arn:aws:s3:::b", &[], Na),
            ],
        );
    }

    #[test]
    fn access_limited_to_addresses() {
        check(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",
                "Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],
                "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}},
                {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
                "Condition":{"IpAddress":{"aws:SourceIp":"192.0.2.0/24"}}}]}"#,
            false,
            &[
                (
                    None,
                    "s3:GetObject",
                    "arn:aws:s3:::b/k",
                    &[("aws:SourceIp", "192.0.2.7")],
                    Allow,
                ),
                (
                    None,
                    "s3:GetObject",
                    "arn:aws:s3:::b/k",
                    &[("aws:SourceIp", "203.0.113.1")],
                    Deny,
                ),
                (
                    Some("GKO"),
                    "s3:PutObject",
                    "arn:aws:s3:::b/k",
                    &[("aws:SourceIp", "2001:db8::1")],
                    Na,
                ),
                (
                    Some("GKO"),
                    "s3:PutObject",
                    "arn:aws:s3:::b/k",
                    &[("aws:SourceIp", "2001:db9::1")],
                    Deny,
                ),
            ],
        );
    }

    #[test]
    fn https_only() {
        check(
            r#"{"Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:*",
                "Resource":"arn:aws:s3:::b/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
            false,
            &[
                (
                    Some("GKO"),
                    "s3:GetObject",
                    "arn:aws:s3:::b/k",
                    &[("aws:SecureTransport", "false")],
                    Deny,
                ),
                (
                    Some("GKO"),
                    "s3:GetObject",
                    "arn:aws:s3:::b/k",
                    &[("aws:SecureTransport", "true")],
                    Na,
                ),
                (
                    Some("GKO"),
                    "s3:ListBucket",
                    "arn:aws:s3:::b",
                    &[("aws:SecureTransport", "false")],
                    Na,
                ),
            ],
        );
    }

    #[test]
    fn a_user_lists_only_their_home() {
        check(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/GKUSER"]},
                "Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
                "Condition":{"StringLike":{"s3:prefix":["home/GKUSER/*","home/GKUSER"]}}},
                {"Effect":"Allow","Principal":{"AWS":"GKUSER"},"Action":["s3:GetObject","s3:PutObject"],
                "Resource":"arn:aws:s3:::b/home/GKUSER/*"}]}"#,
            false,
            &[
                (
                    Some("GKUSER"),
                    "s3:ListBucket",
                    "arn:aws:s3:::b",
                    &[("s3:prefix", "home/GKUSER/docs")],
                    Allow,
                ),
                (
                    Some("GKUSER"),
                    "s3:ListBucket",
                    "arn:aws:s3:::b",
                    &[("s3:prefix", "home/OTHER/")],
                    Na,
                ),
                (Some("GKUSER"), "s3:ListBucket", "arn:aws:s3:::b", &[], Na),
                (
                    Some("GKOTHER"),
                    "s3:ListBucket",
                    "arn:aws:s3:::b",
                    &[("s3:prefix", "home/GKUSER/")],
                    Na,
                ),
                (
                    None,
                    "s3:ListBucket",
                    "arn:aws:s3:::b",
                    &[("s3:prefix", "home/GKUSER/")],
                    Na,
                ),
                (
                    Some("GKUSER"),
                    "s3:PutObject",
                    "arn:aws:s3:::b/home/GKUSER/x",
                    &[],
                    Allow,
                ),
                (
                    Some("GKUSER"),
                    "s3:putobject",
                    "arn:aws:s3:::b/home/GKUSER/x",
                    &[],
                    Allow,
                ),
                (
                    Some("GKUSER"),
                    "s3:PutObject",
                    "arn:aws:s3:::b/home/GKOTHER/x",
                    &[],
                    Na,
                ),
            ],
        );
    }

    #[test]
    fn an_explicit_deny_beats_any_allow() {
        check(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:Get*","Resource":"arn:aws:s3:::b/*"},
                {"Effect":"Deny","Principal":{"CanonicalUser":"GKBAD"},"Action":"s3:GetObject","Resource":"*"}]}"#,
            true,
            &[
                (Some("GKBAD"), "s3:GetObject", "arn:aws:s3:::b/k", &[], Deny),
                (
                    Some("GKBAD"),
                    "s3:GetObjectTagging",
                    "arn:aws:s3:::b/k",
                    &[],
                    Allow,
                ),
                (
                    Some("GKGOOD"),
                    "s3:GetObject",
                    "arn:aws:s3:::b/k",
                    &[],
                    Allow,
                ),
            ],
        );
    }

    #[test]
    fn not_principal_not_action_and_not_resource() {
        check(
            r#"{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"GKOWNER"},"Action":"s3:DeleteObject",
                "Resource":"arn:aws:s3:::b/*"},
                {"Effect":"Allow","Principal":{"AWS":"GKUSER"},"NotAction":"s3:Delete*","NotResource":"arn:aws:s3:::b/private/*"}]}"#,
            false,
            &[
                (
                    Some("GKUSER"),
                    "s3:DeleteObject",
                    "arn:aws:s3:::b/k",
                    &[],
                    Deny,
                ),
                (None, "s3:DeleteObject", "arn:aws:s3:::b/k", &[], Deny),
                (
                    Some("GKOWNER"),
                    "s3:DeleteObject",
                    "arn:aws:s3:::b/k",
                    &[],
                    Na,
                ),
                (
                    Some("GKUSER"),
                    "s3:GetObject",
                    "arn:aws:s3:::b/k",
                    &[],
                    Allow,
                ),
                (
                    Some("GKUSER"),
                    "s3:GetObject",
                    "arn:aws:s3:::b/private/k",
                    &[],
                    Na,
                ),
            ],
        );
    }

    #[test]
    fn uploads_must_give_the_owner_full_control_and_be_encrypted() {
        check(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"GKW"},"Action":"s3:PutObject",
                "Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control"}}},
                {"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
                "Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}}]}"#,
            false,
            &[
                (
                    Some("GKW"),
                    "s3:PutObject",
                    "arn:aws:s3:::b/k",
                    &[
                        ("s3:x-amz-acl", "bucket-owner-full-control"),
                        ("s3:x-amz-server-side-encryption", "AES256"),
                    ],
                    Allow,
                ),
                (
                    Some("GKW"),
                    "s3:PutObject",
                    "arn:aws:s3:::b/k",
                    &[("s3:x-amz-server-side-encryption", "AES256")],
                    Na,
                ),
                (
                    Some("GKW"),
                    "s3:PutObject",
                    "arn:aws:s3:::b/k",
                    &[("s3:x-amz-acl", "bucket-owner-full-control")],
                    Deny,
                ),
            ],
        );
    }

    #[test]
    fn if_exists_numbers_and_case() {
        check(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
                "Condition":{"NumericLessThanEqualsIfExists":{"s3:max-keys":"10"},
                             "StringEqualsIgnoreCase":{"s3:delimiter":"/"}}}]}"#,
            true,
            &[
                (
                    None,
                    "s3:ListBucket",
                    "arn:aws:s3:::b",
                    &[("s3:delimiter", "/")],
                    Allow,
                ),
                (
                    None,
                    "s3:ListBucket",
                    "arn:aws:s3:::b",
                    &[("s3:delimiter", "/"), ("s3:max-keys", "10")],
                    Allow,
                ),
                (
                    None,
                    "s3:ListBucket",
                    "arn:aws:s3:::b",
                    &[("s3:delimiter", "/"), ("s3:max-keys", "11")],
                    Na,
                ),
                (None, "s3:ListBucket", "arn:aws:s3:::b", &[], Na),
            ],
        );
    }

    #[test]
    fn malformed_policies_are_refused_with_a_reason() {
        let cases = [
            ("{", "invalid Json"),
            (r#"{"Version":"2012-10-17"}"#, "Statement"),
            (
                r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
                "effect",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"iam:PassRole","Resource":"*"}]}"#,
                "action",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
                "resource",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"x"},"Action":"s3:GetObject","Resource":"*"}]}"#,
                "principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
                "Principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"StringSorta":{"a":"b"}}}]}"#,
                "Condition type",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1/8"}}}]}"#,
                "IP",
            ),
            (r#"{"Version":"2020-01-01","Statement":[]}"#, "version"),
        ];
        for (text, why) in cases {
            let e = parse(text, "b").expect_err(text);
            assert!(e.0.contains(why), "{text}: {e}");
        }
        let big = format!(
            r#"{{"Statement":[{{"Sid":"{}","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}}]}}"#,
            "x".repeat(MAX_POLICY_BYTES)
        );
        assert!(parse(&big, "b").unwrap_err().0.contains("20 KB"));
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard("s3:get*", "s3:getobject"));
        assert!(wildcard("arn:aws:s3:::b/*", "arn:aws:s3:::b/"));
        assert!(!wildcard("arn:aws:s3:::b/*", "arn:aws:s3:::b"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!wildcard("*a*b*c*", "xxcxxbxxaxx"));
        assert!(wildcard("*", ""));
        // Long patterns stay fast (no exponential backtracking).
        let text = "a".repeat(5000);
        assert!(!wildcard(&format!("{}b", "*a".repeat(200)), &text));
    }
}
