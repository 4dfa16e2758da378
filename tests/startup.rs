//! A cluster is usable the moment its start script returns, its gateways
//! say truthfully whether they are ready, and its logs are plain text with
//! one line per failed request at the level its cause deserves.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use cairn_tests::{Cluster, Options, client_without_retries, digest, pattern};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

fn local_cluster(args: &[&str]) {
    let status = Command::new(root().join("scripts/local-cluster.sh"))
        .args(args)
        .env("CAIRN_BIN_DIR", cairn_tests::bin_dir())
        .status()
        .expect("running scripts/local-cluster.sh");
    assert!(status.success(), "local-cluster.sh {args:?}");
}

/// Stops the cluster of a directory when dropped, whatever happened.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/local-cluster.sh"))
            .arg("down")
            .arg(&self.0)
            .status();
    }
}

fn read_env(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(dir.join("cluster.env"))
        .expect("cluster.env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Record a request that did not answer as expected.
fn fail(failures: &mut Vec<String>, what: String) {
    eprintln!("failed: {what}");
    failures.push(what);
}

#[tokio::test]
async fn a_fresh_local_cluster_serves_every_request_from_both_gateways_at_once() {
    let work = tempfile::Builder::new()
        .prefix("cairn-startup-")
        .tempdir()
        .unwrap();
    let dir = work.path().join("cluster");
    let dir_str = dir.to_str().unwrap().to_owned();
    local_cluster(&["up", &dir_str, "6", "2"]);
    let _down = Down(dir.clone());
    // No pause: the script returned, so both gateways must serve now.
    let env = read_env(&dir);
    let (key, secret) = (&env["AWS_ACCESS_KEY_ID"], &env["AWS_SECRET_ACCESS_KEY"]);
    let clients: Vec<Client> = env["S3_ENDPOINTS"]
        .split(',')
        .map(|e| client_without_retries(e, key, secret))
        .collect();
    assert_eq!(clients.len(), 2);
    let mut failures = Vec::new();
    if let Err(e) = clients[0].create_bucket().bucket("startup").send().await {
        fail(&mut failures, format!("create bucket: {e:?}"));
    }
    for i in 0..300usize {
        let (a, b) = (&clients[i % 2], &clients[(i + 1) % 2]);
        let key = format!("k/{i:03}");
        // Every tenth object is larger than the inline threshold: chunks.
        let len = if i % 10 == 0 { 100 << 10 } else { 1000 + i };
        let first = pattern(i as u64, len);
        let second = pattern(i as u64 + 10_000, len / 2 + 1);
        let put = |c: &Client, body: Vec<u8>| {
            c.put_object()
                .bucket("startup")
                .key(&key)
                .body(ByteStream::from(body))
                .send()
        };
        if let Err(e) = put(a, first.clone()).await {
            fail(&mut failures, format!("{i}: PUT: {e:?}"));
        }
        match b.get_object().bucket("startup").key(&key).send().await {
            Ok(out) => {
                let got = out.body.collect().await.unwrap().into_bytes();
                if digest(&got) != digest(&first) {
                    fail(&mut failures, format!("{i}: GET returned other bytes"));
                }
            }
            Err(e) => fail(&mut failures, format!("{i}: GET: {e:?}")),
        }
        match a.head_object().bucket("startup").key(&key).send().await {
            Ok(h) if h.content_length() == Some(len as i64) => {}
            other => fail(&mut failures, format!("{i}: HEAD: {other:?}")),
        }
        match b
            .list_objects_v2()
            .bucket("startup")
            .prefix(&key)
            .send()
            .await
        {
            Ok(l) if l.key_count() == Some(1) => {}
            other => fail(&mut failures, format!("{i}: LIST: {other:?}")),
        }
        if let Err(e) = put(b, second.clone()).await {
            fail(&mut failures, format!("{i}: overwrite: {e:?}"));
        }
        match a.get_object().bucket("startup").key(&key).send().await {
            Ok(out) => {
                let got = out.body.collect().await.unwrap().into_bytes();
                if digest(&got) != digest(&second) {
                    fail(
                        &mut failures,
                        format!("{i}: GET after overwrite: other bytes"),
                    );
                }
            }
            Err(e) => fail(&mut failures, format!("{i}: GET after overwrite: {e:?}")),
        }
        if let Err(e) = b.delete_object().bucket("startup").key(&key).send().await {
            fail(&mut failures, format!("{i}: DELETE: {e:?}"));
        }
        match a.head_object().bucket("startup").key(&key).send().await {
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {}
            other => fail(&mut failures, format!("{i}: HEAD after DELETE: {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {}",
        failures.len(),
        failures[0]
    );

    // Client errors: each is one INFO line under its request id, none is
    // an ERROR, and no log file holds terminal escape codes.
    let c = &clients[0];
    let missing = c
        .get_object()
        .bucket("startup")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    let missing_id = missing.request_id().expect("a request id").to_owned();
    assert!(
        c.get_object()
            .bucket("nobucket")
            .key("k")
            .send()
            .await
            .is_err()
    );
    assert!(
        c.create_bucket()
            .bucket("sthree-reserved")
            .send()
            .await
            .is_err()
    );
    assert!(
        c.put_object()
            .bucket("startup")
            .key("bad-md5")
            .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
            .body(ByteStream::from_static(b"hello"))
            .send()
            .await
            .is_err()
    );
    let stranger = client_without_retries(&env["S3_ENDPOINT"], "GKNOSUCHKEY0000", "wrong-secret");
    assert!(stranger.list_buckets().send().await.is_err());

    let mut gateway_log = String::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains('\u{1b}'),
                "{} holds terminal escape codes",
                path.display()
            );
            let errors: Vec<&str> = text.lines().filter(|l| l.contains(" ERROR ")).collect();
            assert!(
                errors.is_empty(),
                "{} has ERROR lines: {errors:#?}",
                path.display()
            );
            if path.file_name().unwrap() == "gateway1.log" {
                gateway_log = text;
            }
        }
    }
    let lines: Vec<&str> = gateway_log
        .lines()
        .filter(|l| l.contains(&missing_id))
        .collect();
    assert_eq!(lines.len(), 1, "one line for the failed GET: {lines:#?}");
    assert!(
        lines[0].contains(" INFO ") && lines[0].contains("NoSuchKey"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn a_gateway_without_a_layout_is_live_but_not_ready() {
    let mut opts = Options::nodes(3);
    opts.apply_layout = false;
    let mut cluster = Cluster::start_with(opts).await.unwrap();
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let url = format!("{}{path}", cluster.endpoint(0));
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/_cairn/health/live").await, 200);
    assert_eq!(get("/_cairn/health/ready").await, 503);
    cluster.apply_layout().await.unwrap();
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{}/_cairn/health/ready", cluster.endpoint(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    cluster.kill_node(0);
    cluster.kill_node(1);
    let status = http
        .get(format!("{}/_cairn/health/ready", cluster.endpoint(0)))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 503, "a majority of the nodes is gone");
}
