//! `cairn-load`: an end-to-end S3 load generator. Measures PUT and GET
//! throughput for 1 MiB and 64 MiB objects, small-object (4 KiB) operations
//! per second (PUT, GET, DELETE), and ListObjectsV2 keys per second, with
//! p50/p99 latencies, against any S3 endpoint.
//!
//! Every request count and the concurrency are bounded by flags; the run
//! stops by itself.
//!
//! ```text
//! cairn-load --endpoint http://127.0.0.1:9000 --access-key ... --secret-key ...
//! ```

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use clap::Parser;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "End-to-end S3 load generator")]
struct Args {
    /// S3 endpoint.
    #[arg(long, env = "S3_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    endpoint: String,
    /// Access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    /// Secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    /// Region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// Bucket to use (created if missing).
    #[arg(long, default_value = "cairn-load")]
    bucket: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// 1 MiB objects written then read.
    #[arg(long, default_value_t = 64)]
    objects_1mib: usize,
    /// 64 MiB objects written then read.
    #[arg(long, default_value_t = 4)]
    objects_64mib: usize,
    /// 4 KiB objects written (then listed).
    #[arg(long, default_value_t = 2000)]
    objects_4kib: usize,
    /// Instead of the standard run: PUT one object of this many bytes (from
    /// a file written to --work-dir first), GET it back and verify it.
    #[arg(long)]
    single_object_bytes: Option<u64>,
    /// With --single-object-bytes: upload by multipart with parts of this
    /// many bytes (0: one PUT).
    #[arg(long, default_value_t = 0)]
    part_bytes: u64,
    /// With --part-bytes: parts uploaded at once (the AWS CLI uses 10).
    #[arg(long, default_value_t = 10)]
    part_concurrency: usize,
    /// Scratch directory for --single-object-bytes.
    #[arg(long, default_value_t = std::env::temp_dir().display().to_string())]
    work_dir: String,
}

/// Upload `path` as "single-object" by multipart, `part_concurrency` parts
/// at a time, as the AWS CLI does.
async fn multipart_upload(
    s3: &Client,
    args: &Args,
    path: &std::path::Path,
    size: u64,
) -> anyhow::Result<()> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    anyhow::ensure!(
        (1..=64).contains(&args.part_concurrency),
        "part concurrency must be 1..=64"
    );
    let up = s3
        .create_multipart_upload()
        .bucket(&args.bucket)
        .key("single-object")
        .send()
        .await?;
    let upload_id = up.upload_id().context("no upload id")?.to_owned();
    let parts = size.div_ceil(args.part_bytes);
    let mut set = tokio::task::JoinSet::new();
    let mut done = Vec::new();
    for n in 0..parts {
        if set.len() >= args.part_concurrency {
            done.push(set.join_next().await.context("running")???);
        }
        let (s3, bucket, id, path) = (
            s3.clone(),
            args.bucket.clone(),
            upload_id.clone(),
            path.to_owned(),
        );
        let offset = n * args.part_bytes;
        let len = args.part_bytes.min(size - offset);
        set.spawn(async move {
            let body = ByteStream::read_from()
                .path(&path)
                .offset(offset)
                .length(aws_sdk_s3::primitives::Length::Exact(len))
                .build()
                .await?;
            let out = s3
                .upload_part()
                .bucket(bucket)
                .key("single-object")
                .upload_id(id)
                .part_number(n as i32 + 1)
                .body(body)
                .send()
                .await?;
            Ok::<_, anyhow::Error>(
                CompletedPart::builder()
                    .part_number(n as i32 + 1)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            )
        });
    }
    while let Some(r) = set.join_next().await {
        done.push(r??);
    }
    done.sort_by_key(|p| p.part_number());
    s3.complete_multipart_upload()
        .bucket(&args.bucket)
        .key("single-object")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// PUT one big object from a file, GET it back streaming, compare BLAKE3.
async fn single_object(s3: &Client, args: &Args, size: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let path =
        std::path::Path::new(&args.work_dir).join(format!("cairn-load-{}.bin", std::process::id()));
    let mut expected = blake3::Hasher::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut left = size;
        let mut seed = 1u64;
        while left > 0 {
            let n = left.min(8 << 20) as usize;
            let block = payload(n, seed);
            expected.update(&block);
            f.write_all(&block)?;
            left -= n as u64;
            seed += 1;
        }
        f.flush()?;
    }
    let start = Instant::now();
    let put = if args.part_bytes > 0 {
        multipart_upload(s3, args, &path, size).await
    } else {
        s3.put_object()
            .bucket(&args.bucket)
            .key("single-object")
            .body(ByteStream::from_path(&path).await?)
            .send()
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from)
    };
    std::fs::remove_file(&path)?;
    put?;
    let put_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let out = s3
        .get_object()
        .bucket(&args.bucket)
        .key("single-object")
        .send()
        .await?;
    let mut body = out.body;
    let mut got = blake3::Hasher::new();
    let mut n = 0u64;
    while let Some(piece) = body.try_next().await? {
        got.update(&piece);
        n += piece.len() as u64;
    }
    let get_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(n == size, "short read: {n} of {size}");
    anyhow::ensure!(got.finalize() == expected.finalize(), "content differs");
    let how = if args.part_bytes > 0 {
        format!(
            "multipart, {} parts of {} bytes at a time",
            args.part_concurrency, args.part_bytes
        )
    } else {
        "one PUT".to_owned()
    };
    println!(
        "single object {size} bytes ({how}): PUT {:.1} MB/s, GET {:.1} MB/s, content verified",
        size as f64 / put_secs / 1e6,
        size as f64 / get_secs / 1e6
    );
    Ok(())
}

struct Stats {
    name: String,
    latencies: Vec<Duration>,
    bytes: u64,
    wall: Duration,
}

impl Stats {
    fn print(&self) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| {
            l.get(((l.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        let secs = self.wall.as_secs_f64();
        println!(
            "{:<22} {:>7} ops {:>9.1} ops/s {:>9.1} MB/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
            self.name,
            l.len(),
            l.len() as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
        );
    }
}

async fn run<F, Fut>(
    name: &str,
    count: usize,
    concurrency: usize,
    bytes_each: u64,
    op: F,
) -> anyhow::Result<Stats>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        if set.len() >= concurrency {
            latencies.push(set.join_next().await.expect("running")??);
        }
        let op = op.clone();
        set.spawn(async move {
            let t = Instant::now();
            op(i).await?;
            Ok::<_, anyhow::Error>(t.elapsed())
        });
    }
    while let Some(r) = set.join_next().await {
        latencies.push(r??);
    }
    Ok(Stats {
        name: name.to_owned(),
        latencies,
        bytes: bytes_each * count as u64,
        wall: start.elapsed(),
    })
}

fn payload(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

async fn put_get(
    s3: &Client,
    args: &Args,
    label: &str,
    size: usize,
    count: usize,
) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let body = payload(size, size as u64);
    let (s, b, l) = (s3.clone(), args.bucket.clone(), label.to_owned());
    let put = run(
        &format!("PUT {label}"),
        count,
        args.concurrency,
        size as u64,
        move |i| {
            let (s, b, body, key) = (s.clone(), b.clone(), body.clone(), format!("{l}/{i}"));
            async move {
                s.put_object()
                    .bucket(b)
                    .key(key)
                    .body(ByteStream::from(body))
                    .send()
                    .await?;
                Ok(())
            }
        },
    )
    .await?;
    put.print();
    let (s, b, l) = (s3.clone(), args.bucket.clone(), label.to_owned());
    let get = run(
        &format!("GET {label}"),
        count,
        args.concurrency,
        size as u64,
        move |i| {
            let (s, b, key) = (s.clone(), b.clone(), format!("{l}/{i}"));
            async move {
                let out = s.get_object().bucket(b).key(key).send().await?;
                let mut body = out.body;
                let mut n = 0usize;
                while let Some(piece) = body.try_next().await? {
                    n += piece.len();
                }
                anyhow::ensure!(n == size, "short read: {n} of {size}");
                Ok(())
            }
        },
    )
    .await?;
    get.print();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (1..=256).contains(&args.concurrency),
        "concurrency must be 1..=256"
    );
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new(args.region.clone()))
        .endpoint_url(&args.endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            &args.access_key,
            &args.secret_key,
            None,
            None,
            "cairn-load",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let s3 = Client::from_conf(config);
    match s3.create_bucket().bucket(&args.bucket).send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you()) => {}
        Err(e) => return Err(e).context("creating the bench bucket"),
    }
    if let Some(size) = args.single_object_bytes {
        return single_object(&s3, &args, size).await;
    }
    println!(
        "endpoint {} concurrency {}",
        args.endpoint, args.concurrency
    );
    put_get(&s3, &args, "1MiB", 1 << 20, args.objects_1mib).await?;
    put_get(&s3, &args, "64MiB", 64 << 20, args.objects_64mib).await?;
    put_get(&s3, &args, "4KiB", 4 << 10, args.objects_4kib).await?;
    if args.objects_4kib > 0 {
        let start = Instant::now();
        let mut keys = 0usize;
        let mut latencies = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let t = Instant::now();
            let out = s3
                .list_objects_v2()
                .bucket(&args.bucket)
                .prefix("4KiB/")
                .set_continuation_token(token.clone())
                .send()
                .await?;
            latencies.push(t.elapsed());
            keys += out.contents().len();
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        let wall = start.elapsed();
        println!(
            "LIST 4KiB keys: {keys} keys in {:.2} s = {:.0} keys/s ({} pages)",
            wall.as_secs_f64(),
            keys as f64 / wall.as_secs_f64(),
            latencies.len()
        );
        let (s, b) = (s3.clone(), args.bucket.clone());
        let delete = run(
            "DELETE 4KiB",
            args.objects_4kib,
            args.concurrency,
            0,
            move |i| {
                let (s, b, key) = (s.clone(), b.clone(), format!("4KiB/{i}"));
                async move {
                    s.delete_object().bucket(b).key(key).send().await?;
                    Ok(())
                }
            },
        )
        .await?;
        delete.print();
    }
    Ok(())
}
