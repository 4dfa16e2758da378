//! Access control against a real cluster: bucket policies (anonymous
//! readers, other keys, conditions on the request, explicit deny over
//! allow), ACLs, Public Access Block, Object Ownership and the keys the
//! operator allowed, through `aws-sdk-s3` signed as different keys and unsigned
//! HTTP. Every allowed read is checked for its bytes; every refusal for
//! leaving the object as it was.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketCannedAcl, Delete, ObjectCannedAcl, ObjectIdentifier, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration,
};
use cairn_tests::{Cluster, client, digest, get_bytes, pattern, put_bytes};

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

async fn set_policy(s3: &aws_sdk_s3::Client, bucket: &str, policy: &str) -> Result<(), String> {
    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e.into_service_error()))
}

/// An unsigned GET: its status and body.
async fn anonymous_get(http: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

async fn get_code(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(_) => "ok".into(),
        Err(e) => {
            let raw = e.raw_response().map(|r| r.status().as_u16());
            let c = code(&e.into_service_error());
            if c.is_empty() { format!("{raw:?}") } else { c }
        }
    }
}

#[tokio::test]
async fn policies_decide_who_reads_and_writes() {
    let cluster = Cluster::start(6).await;
    let endpoint = cluster.endpoint(0);
    let (alice_id, alice_secret) = cluster.create_key("alice").await.unwrap();
    let (bob_id, bob_secret) = cluster.create_key("bob").await.unwrap();
    let alice = client(&endpoint, &alice_id, &alice_secret);
    let bob = client(&endpoint, &bob_id, &bob_secret);
    let http = reqwest::Client::new();
    let b = "shared";
    alice.create_bucket().bucket(b).send().await.unwrap();
    let public = pattern(1, 70_000);
    let private = pattern(2, 5_000);
    put_bytes(&alice, b, "public/a.bin", public.clone()).await;
    put_bytes(&alice, b, "private/b.bin", private.clone()).await;
    let public_url = format!("{endpoint}/{b}/public/a.bin");
    let private_url = format!("{endpoint}/{b}/private/b.bin");

    // Without a policy only the owner gets in.
    assert_eq!(anonymous_get(&http, &public_url).await.0, 403);
    assert_eq!(get_code(&bob, b, "public/a.bin").await, "AccessDenied");
    let e = bob.head_bucket().bucket(b).send().await.unwrap_err();
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 403);
    let e = bob.get_bucket_policy().bucket(b).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    let e = alice
        .get_bucket_policy()
        .bucket(b)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchBucketPolicy");
    let r = http.get(format!("{endpoint}/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403, "anonymous ListBuckets");

    // Malformed policies, or ones about another bucket, are refused.
    assert_eq!(
        set_policy(&alice, b, "{\"Statement\": []}").await,
        Err("MalformedPolicy".into())
    );
    let elsewhere = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#;
    assert_eq!(
        set_policy(&alice, b, elsewhere).await,
        Err("MalformedPolicy".into())
    );
    // Only the owner may set one.
    let public_read = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/public/*"}},
            {{"Sid":"BobWritesUploads","Effect":"Allow","Principal":{{"AWS":"{bob_id}"}},"Action":["s3:PutObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::{b}/uploads/*"}},
            {{"Sid":"BobListsUploads","Effect":"Allow","Principal":{{"AWS":"{bob_id}"}},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::{b}","Condition":{{"StringLike":{{"s3:prefix":"uploads/*"}}}}}}
        ]}}"#
    );
    assert_eq!(
        set_policy(&bob, b, &public_read).await,
        Err("AccessDenied".into())
    );
    set_policy(&alice, b, &public_read).await.unwrap();
    let got = alice.get_bucket_policy().bucket(b).send().await.unwrap();
    assert_eq!(got.policy(), Some(public_read.as_str()));
    let status = alice
        .get_bucket_policy_status()
        .bucket(b)
        .send()
        .await
        .unwrap();
    assert_eq!(status.policy_status().unwrap().is_public(), Some(true));

    // Anyone reads public/, nobody but the owner reads private/.
    let (status, body) = anonymous_get(&http, &public_url).await;
    assert_eq!(status, 200);
    assert_eq!(digest(&body), digest(&public));
    assert_eq!(anonymous_get(&http, &private_url).await.0, 403);
    assert_eq!(
        digest(&get_bytes(&bob, b, "public/a.bin").await),
        digest(&public)
    );
    assert_eq!(get_code(&bob, b, "private/b.bin").await, "AccessDenied");
    let r = http
        .put(format!("{endpoint}/{b}/public/anon.bin"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "anonymous PUT");

    // Bob writes uploads/ only, and lists only with that prefix.
    put_bytes(&bob, b, "uploads/bob.bin", pattern(3, 1000)).await;
    let e = bob
        .put_object()
        .bucket(b)
        .key("public/a.bin")
        .body(ByteStream::from_static(b"overwrite"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    assert_eq!(
        digest(&get_bytes(&alice, b, "public/a.bin").await),
        digest(&public),
        "a refused PUT changes nothing"
    );
    let listed = bob
        .list_objects_v2()
        .bucket(b)
        .prefix("uploads/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["uploads/bob.bin"]);
    let e = bob.list_objects_v2().bucket(b).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    // DeleteObjects decides key by key.
    let ids = ["uploads/bob.bin", "private/b.bin"]
        .iter()
        .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
        .collect();
    let out = bob
        .delete_objects()
        .bucket(b)
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["uploads/bob.bin"]);
    let errors: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap(), e.code().unwrap()))
        .collect();
    assert_eq!(errors, [("private/b.bin", "AccessDenied")]);
    assert_eq!(
        digest(&get_bytes(&alice, b, "private/b.bin").await),
        digest(&private)
    );
    // Bob's presigned URL is worth what Bob may do.
    let presign = |key: &'static str| {
        let bob = bob.clone();
        async move {
            bob.get_object()
                .bucket(b)
                .key(key)
                .presigned(
                    aws_sdk_s3::presigning::PresigningConfig::expires_in(
                        std::time::Duration::from_secs(60),
                    )
                    .unwrap(),
                )
                .await
                .unwrap()
        }
    };
    let ok = presign("public/a.bin").await;
    assert_eq!(http.get(ok.uri()).send().await.unwrap().status(), 200);
    let refused = presign("private/b.bin").await;
    assert_eq!(http.get(refused.uri()).send().await.unwrap().status(), 403);

    // A condition on the version's own tags (s3:ExistingObjectTag).
    for (key, tags) in [
        ("tagged.bin", "Security=public"),
        ("plain.bin", "security=private"),
    ] {
        alice
            .put_object()
            .bucket(b)
            .key(key)
            .tagging(tags)
            .body(ByteStream::from(public.clone()))
            .send()
            .await
            .unwrap();
    }
    let by_tag = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Principal":{{"AWS":"{bob_id}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*","Condition":{{"StringEquals":{{"s3:ExistingObjectTag/Security":"public"}}}}}}
        ]}}"#
    );
    set_policy(&alice, b, &by_tag).await.unwrap();
    assert_eq!(
        digest(&get_bytes(&bob, b, "tagged.bin").await),
        digest(&public)
    );
    assert_eq!(get_code(&bob, b, "plain.bin").await, "AccessDenied");
    assert_eq!(get_code(&bob, b, "private/b.bin").await, "AccessDenied");
    set_policy(&alice, b, &public_read).await.unwrap();

    // A missing key is refused to a reader who may not list the bucket,
    // and reported missing to one who may.
    let missing_url = format!("{endpoint}/{b}/public/missing.bin");
    assert_eq!(anonymous_get(&http, &missing_url).await.0, 403);
    let listable = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/public/*"}},
            {{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::{b}"}}
        ]}}"#
    );
    set_policy(&alice, b, &listable).await.unwrap();
    assert_eq!(anonymous_get(&http, &missing_url).await.0, 404);
    assert_eq!(anonymous_get(&http, &private_url).await.0, 403);

    // An explicit deny beats every allow, the owner's included; the
    // owner can still take the policy away.
    let deny_loopback = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*"}},
            {{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*","Condition":{{"IpAddress":{{"aws:SourceIp":"127.0.0.0/8"}}}}}}
        ]}}"#
    );
    set_policy(&alice, b, &deny_loopback).await.unwrap();
    assert_eq!(anonymous_get(&http, &public_url).await.0, 403);
    assert_eq!(get_code(&bob, b, "public/a.bin").await, "AccessDenied");
    assert_eq!(get_code(&alice, b, "public/a.bin").await, "AccessDenied");
    // From elsewhere it would allow: the same policy with another range.
    let deny_elsewhere = deny_loopback.replace("127.0.0.0/8", "192.0.2.0/24");
    set_policy(&alice, b, &deny_elsewhere).await.unwrap();
    assert_eq!(anonymous_get(&http, &private_url).await.0, 200);
    // A policy that requires TLS refuses this plain-HTTP endpoint.
    let tls_only = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{b}","arn:aws:s3:::{b}/*"],"Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}}
        ]}}"#
    );
    set_policy(&alice, b, &tls_only).await.unwrap();
    assert_eq!(get_code(&alice, b, "private/b.bin").await, "AccessDenied");
    // The root key too, which may still read and replace the policy.
    let root = cluster.s3();
    assert_eq!(get_code(&root, b, "private/b.bin").await, "AccessDenied");
    root.get_bucket_policy().bucket(b).send().await.unwrap();
    alice.delete_bucket_policy().bucket(b).send().await.unwrap();
    assert_eq!(get_code(&root, b, "private/b.bin").await, "ok");
    assert_eq!(get_code(&alice, b, "private/b.bin").await, "ok");
    assert_eq!(anonymous_get(&http, &public_url).await.0, 403);
    // Deleting it again succeeds, as in S3.
    alice.delete_bucket_policy().bucket(b).send().await.unwrap();
}

#[tokio::test]
async fn public_access_block_and_ownership_controls() {
    let cluster = Cluster::start(6).await;
    let endpoint = cluster.endpoint(0);
    let (alice_id, alice_secret) = cluster.create_key("alice").await.unwrap();
    let (carol_id, carol_secret) = cluster.create_key("carol").await.unwrap();
    let alice = client(&endpoint, &alice_id, &alice_secret);
    let carol = client(&endpoint, &carol_id, &carol_secret);
    let http = reqwest::Client::new();
    let b = "guarded";
    alice.create_bucket().bucket(b).send().await.unwrap();
    let data = pattern(4, 20_000);
    put_bytes(&alice, b, "a.bin", data.clone()).await;
    let url = format!("{endpoint}/{b}/a.bin");
    let public_read = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*"}}]}}"#
    );

    // No configuration until one is put.
    let e = alice
        .get_public_access_block()
        .bucket(b)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "NoSuchPublicAccessBlockConfiguration"
    );
    let block = |policy: bool, restrict: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_policy(policy)
            .restrict_public_buckets(restrict)
            .block_public_acls(false)
            .ignore_public_acls(false)
            .build()
    };
    alice
        .put_public_access_block()
        .bucket(b)
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .unwrap();
    let got = alice
        .get_public_access_block()
        .bucket(b)
        .send()
        .await
        .unwrap();
    let c = got.public_access_block_configuration().unwrap();
    assert_eq!(c.block_public_policy(), Some(true));
    assert_eq!(c.restrict_public_buckets(), Some(false));

    // BlockPublicPolicy refuses a public policy, not a narrow one.
    assert_eq!(
        set_policy(&alice, b, &public_read).await,
        Err("AccessDenied".into())
    );
    let e = alice
        .get_bucket_policy()
        .bucket(b)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchBucketPolicy");
    let carol_reads = public_read.replace(
        r#""Principal":"*""#,
        &format!(r#""Principal":{{"AWS":"{carol_id}"}}"#),
    );
    set_policy(&alice, b, &carol_reads).await.unwrap();
    let status = alice
        .get_bucket_policy_status()
        .bucket(b)
        .send()
        .await
        .unwrap();
    assert_eq!(status.policy_status().unwrap().is_public(), Some(false));
    assert_eq!(digest(&get_bytes(&carol, b, "a.bin").await), digest(&data));

    // RestrictPublicBuckets: a public policy grants only to the owner.
    alice
        .put_public_access_block()
        .bucket(b)
        .public_access_block_configuration(block(false, false))
        .send()
        .await
        .unwrap();
    set_policy(&alice, b, &public_read).await.unwrap();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(digest(&r.bytes().await.unwrap()), digest(&data));
    alice
        .put_public_access_block()
        .bucket(b)
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 403);
    assert_eq!(get_code(&carol, b, "a.bin").await, "AccessDenied");
    assert_eq!(digest(&get_bytes(&alice, b, "a.bin").await), digest(&data));
    // Only the owner changes the block; deleting it lets the policy work.
    let e = carol
        .delete_public_access_block()
        .bucket(b)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    alice
        .delete_public_access_block()
        .bucket(b)
        .send()
        .await
        .unwrap();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);

    // Object Ownership: BucketOwnerEnforced for a new bucket, as in S3.
    let ownership = |s3: aws_sdk_s3::Client| async move {
        match s3.get_bucket_ownership_controls().bucket(b).send().await {
            Ok(o) => o.ownership_controls().unwrap().rules()[0]
                .object_ownership()
                .as_str()
                .to_owned(),
            Err(e) => code(&e.into_service_error()),
        }
    };
    assert_eq!(ownership(alice.clone()).await, "BucketOwnerEnforced");
    alice
        .put_bucket_ownership_controls()
        .bucket(b)
        .ownership_controls(
            OwnershipControls::builder()
                .rules(
                    OwnershipControlsRule::builder()
                        .object_ownership(ObjectOwnership::ObjectWriter)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ownership(alice.clone()).await, "ObjectWriter");
    assert_eq!(ownership(carol.clone()).await, "AccessDenied");
    alice
        .delete_bucket_ownership_controls()
        .bucket(b)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ownership(alice.clone()).await,
        "OwnershipControlsNotFoundError"
    );
}

#[tokio::test]
async fn allowed_keys_use_a_bucket_but_do_not_configure_it() {
    let cluster = Cluster::start(6).await;
    let endpoint = cluster.endpoint(0);
    let (alice_id, alice_secret) = cluster.create_key("alice").await.unwrap();
    let (dave_id, dave_secret) = cluster.create_key("dave").await.unwrap();
    let alice = client(&endpoint, &alice_id, &alice_secret);
    let dave = client(&endpoint, &dave_id, &dave_secret);
    let b = "team";
    alice.create_bucket().bucket(b).send().await.unwrap();
    cluster
        .admin_post(
            &format!("/_cairn/admin/v1/buckets/{b}/allow"),
            serde_json::json!({ "access_key_id": dave_id }),
        )
        .await
        .unwrap();
    let data = pattern(5, 9_000);
    put_bytes(&dave, b, "d.bin", data.clone()).await;
    assert_eq!(digest(&get_bytes(&alice, b, "d.bin").await), digest(&data));
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*"}}]}}"#
    );
    assert_eq!(
        set_policy(&dave, b, &policy).await,
        Err("AccessDenied".into())
    );
    let e = dave.delete_bucket().bucket(b).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    // A policy's explicit deny holds for them too.
    let deny = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":"{dave_id}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*"}}]}}"#
    );
    set_policy(&alice, b, &deny).await.unwrap();
    assert_eq!(get_code(&dave, b, "d.bin").await, "AccessDenied");
    assert_eq!(digest(&get_bytes(&alice, b, "d.bin").await), digest(&data));
}

#[tokio::test]
async fn acls_grant_where_object_ownership_enables_them() {
    let cluster = Cluster::start(6).await;
    let endpoint = cluster.endpoint(0);
    let (alice_id, alice_secret) = cluster.create_key("alice").await.unwrap();
    let (bob_id, bob_secret) = cluster.create_key("bob").await.unwrap();
    let (carol_id, carol_secret) = cluster.create_key("carol").await.unwrap();
    let alice = client(&endpoint, &alice_id, &alice_secret);
    let bob = client(&endpoint, &bob_id, &bob_secret);
    let carol = client(&endpoint, &carol_id, &carol_secret);
    let http = reqwest::Client::new();
    let put_acl = |s3: &aws_sdk_s3::Client, b: &str, k: &str, acl: ObjectCannedAcl| {
        let s3 = s3.clone();
        let (b, k) = (b.to_owned(), k.to_owned());
        async move {
            s3.put_object()
                .bucket(b)
                .key(k)
                .acl(acl)
                .body(ByteStream::from(pattern(9, 3000)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| code(&e.into_service_error()))
        }
    };

    // A new bucket disables ACLs: only the owner's full control is taken.
    let enforced = "acl-enforced";
    alice.create_bucket().bucket(enforced).send().await.unwrap();
    assert_eq!(
        put_acl(&alice, enforced, "k", ObjectCannedAcl::PublicRead).await,
        Err("AccessControlListNotSupported".into())
    );
    let e = alice.head_object().bucket(enforced).key("k").send().await;
    assert!(e.is_err(), "a refused PUT writes nothing");
    put_acl(
        &alice,
        enforced,
        "k",
        ObjectCannedAcl::BucketOwnerFullControl,
    )
    .await
    .unwrap();
    let e = alice
        .put_bucket_acl()
        .bucket(enforced)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "AccessControlListNotSupported"
    );
    let acl = alice
        .get_bucket_acl()
        .bucket(enforced)
        .send()
        .await
        .unwrap();
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(
        acl.grants()[0].permission().unwrap().as_str(),
        "FULL_CONTROL"
    );
    assert_eq!(acl.owner().unwrap().id(), Some(alice_id.as_str()));
    // And a public bucket ACL cannot come with it at creation.
    let e = alice
        .create_bucket()
        .bucket("acl-public-at-birth")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "InvalidBucketAclWithObjectOwnership"
    );

    // ObjectWriter: ACLs apply.
    let b = "acl-writer";
    alice
        .create_bucket()
        .bucket(b)
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap();
    put_acl(&alice, b, "open.bin", ObjectCannedAcl::PublicRead)
        .await
        .unwrap();
    put_acl(&alice, b, "closed.bin", ObjectCannedAcl::Private)
        .await
        .unwrap();
    let r = http
        .get(format!("{endpoint}/{b}/open.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(digest(&r.bytes().await.unwrap()), digest(&pattern(9, 3000)));
    let closed_url = format!("{endpoint}/{b}/closed.bin");
    assert_eq!(http.get(&closed_url).send().await.unwrap().status(), 403);
    // A grant to Bob on one object lets Bob, and nobody else, read it.
    assert_eq!(get_code(&bob, b, "closed.bin").await, "AccessDenied");
    alice
        .put_object_acl()
        .bucket(b)
        .key("closed.bin")
        .grant_read(format!("id={bob_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        digest(&get_bytes(&bob, b, "closed.bin").await),
        digest(&pattern(9, 3000))
    );
    assert_eq!(get_code(&carol, b, "closed.bin").await, "AccessDenied");
    let acl = alice
        .get_object_acl()
        .bucket(b)
        .key("closed.bin")
        .send()
        .await
        .unwrap();
    let grants: Vec<(Option<&str>, &str)> = acl
        .grants()
        .iter()
        .map(|g| {
            (
                g.grantee().and_then(|g| g.id()),
                g.permission().unwrap().as_str(),
            )
        })
        .collect();
    assert_eq!(
        grants,
        [
            (Some(alice_id.as_str()), "FULL_CONTROL"),
            (Some(bob_id.as_str()), "READ")
        ]
    );
    // Bob may not change that ACL (no WRITE_ACP), nor write the bucket.
    let e = bob
        .put_object_acl()
        .bucket(b)
        .key("closed.bin")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    assert_eq!(
        put_acl(&bob, b, "bob.bin", ObjectCannedAcl::Private).await,
        Err("AccessDenied".into())
    );
    // A bucket grant of WRITE lets Bob write; under ObjectWriter the
    // object is his.
    alice
        .put_bucket_acl()
        .bucket(b)
        .grant_write(format!("id={bob_id}"))
        .send()
        .await
        .unwrap();
    put_acl(&bob, b, "bob.bin", ObjectCannedAcl::Private)
        .await
        .unwrap();
    let acl = bob
        .get_object_acl()
        .bucket(b)
        .key("bob.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.owner().unwrap().id(), Some(bob_id.as_str()));
    // ACLs cannot be disabled while the bucket's grants reach others.
    let enforce = OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = alice
        .put_bucket_ownership_controls()
        .bucket(b)
        .ownership_controls(enforce.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "InvalidBucketAclWithObjectOwnership"
    );

    // Public Access Block: public ACLs refused, or ignored.
    let block = |acls: bool, ignore: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(acls)
            .ignore_public_acls(ignore)
            .block_public_policy(false)
            .restrict_public_buckets(false)
            .build()
    };
    alice
        .put_public_access_block()
        .bucket(b)
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put_acl(&alice, b, "new.bin", ObjectCannedAcl::PublicRead).await,
        Err("AccessDenied".into())
    );
    let e = alice
        .put_object_acl()
        .bucket(b)
        .key("closed.bin")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    assert_eq!(http.get(&closed_url).send().await.unwrap().status(), 403);
    alice
        .put_public_access_block()
        .bucket(b)
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();
    let open_url = format!("{endpoint}/{b}/open.bin");
    assert_eq!(http.get(&open_url).send().await.unwrap().status(), 403);
    alice
        .delete_public_access_block()
        .bucket(b)
        .send()
        .await
        .unwrap();
    assert_eq!(http.get(&open_url).send().await.unwrap().status(), 200);
    // With the bucket's grants gone, ACLs can be disabled, and then the
    // object grants count for nothing.
    alice
        .put_bucket_acl()
        .bucket(b)
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    alice
        .put_bucket_ownership_controls()
        .bucket(b)
        .ownership_controls(enforce)
        .send()
        .await
        .unwrap();
    assert_eq!(http.get(&open_url).send().await.unwrap().status(), 403);
    assert_eq!(get_code(&bob, b, "closed.bin").await, "AccessDenied");
}

/// An unsigned browser upload (POST Object) of `body` to `key`.
async fn anonymous_post(http: &reqwest::Client, url: &str, key: &str, body: &[u8]) -> u16 {
    let boundary = "cairn-test-boundary-7d1f";
    let mut form = Vec::new();
    form.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    form.extend(body);
    form.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    http.post(url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn unsigned_browser_uploads_only_where_a_policy_lets_anyone_write() {
    let cluster = Cluster::start(6).await;
    let endpoint = cluster.endpoint(0);
    let s3 = cluster.s3();
    let http = reqwest::Client::new();
    let b = "dropbox";
    s3.create_bucket().bucket(b).send().await.unwrap();
    let url = format!("{endpoint}/{b}");
    let body = pattern(11, 300_000);
    assert_eq!(anonymous_post(&http, &url, "in/a.bin", &body).await, 403);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::{b}/in/*"}}]}}"#
    );
    set_policy(&s3, b, &policy).await.unwrap();
    assert_eq!(anonymous_post(&http, &url, "in/a.bin", &body).await, 204);
    assert_eq!(digest(&get_bytes(&s3, b, "in/a.bin").await), digest(&body));
    // The uploader may not read it back, nor write elsewhere.
    let (status, _) = anonymous_get(&http, &format!("{url}/in/a.bin")).await;
    assert_eq!(status, 403);
    assert_eq!(anonymous_post(&http, &url, "out/b.bin", &body).await, 403);
    let e = s3.head_object().bucket(b).key("out/b.bin").send().await;
    assert!(e.is_err(), "a refused upload wrote nothing");
}
