//! Single-core ceilings of the PUT/GET path's primitives: hashing, the
//! erasure codec, and building the placement table.
//!
//! Run: `cargo bench -p cairn-benches --bench primitives`

use cairn::codec::{Codec, ErasureProfile, ReedSolomonCodec};
use cairn::id::{ChunkId, NodeId};
use cairn::layout::{Layout, NodeInfo};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

fn hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash");
    for size in [64 << 10, 4 << 20] {
        let buf = data(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("blake3", size), &buf, |b, buf| {
            b.iter(|| blake3::hash(black_box(buf)))
        });
        g.bench_with_input(BenchmarkId::new("md5", size), &buf, |b, buf| {
            b.iter(|| <md5::Md5 as md5::Digest>::digest(black_box(buf)))
        });
        g.bench_with_input(BenchmarkId::new("sha256", size), &buf, |b, buf| {
            b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(black_box(buf)))
        });
    }
    g.finish();
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("rs_4_2");
    let profile = ErasureProfile {
        data_shards: 4,
        parity_shards: 2,
    };
    let codec = ReedSolomonCodec::new(profile).unwrap();
    for size in [1 << 20, 4 << 20] {
        let chunk = data(size);
        let id = ChunkId::of(&chunk);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("encode", size), &chunk, |b, chunk| {
            b.iter(|| codec.encode(black_box(chunk)).unwrap())
        });
        let shards = codec.encode(&chunk).unwrap();
        g.bench_with_input(
            BenchmarkId::new("decode_two_data_shards_lost", size),
            &shards,
            |b, shards| {
                b.iter(|| {
                    let mut slots: Vec<Option<Vec<u8>>> =
                        shards.iter().cloned().map(Some).collect();
                    slots[0] = None;
                    slots[2] = None;
                    codec.decode(id, size, slots).unwrap()
                })
            },
        );
    }
    g.finish();
}

fn placement(c: &mut Criterion) {
    let mut layout = Layout {
        version: 1,
        profile: ErasureProfile {
            data_shards: 4,
            parity_shards: 2,
        },
        partition_bits: 0,
        groups: Vec::new(),
        nodes: (0..12)
            .map(|i| NodeInfo {
                id: NodeId(i * 7919 + 1),
                addr: format!("127.0.0.1:{}", 7000 + i),
                zone: format!("z{}", i % 3),
                capacity: 1,
            })
            .collect(),
        placement: Vec::new(),
        out: Default::default(),
        leaving: Default::default(),
        placement_version: 0,
        history: Vec::new(),
    };
    layout.plan_placement(None).unwrap();
    layout
        .assign_groups(cairn::layout::DEFAULT_METADATA_GROUPS)
        .unwrap();
    c.bench_function("placement_plan_12_nodes_256_partitions", |b| {
        b.iter(|| {
            let mut l = black_box(&layout).clone();
            l.plan_placement(None).unwrap();
            l
        })
    });
}

criterion_group!(benches, hashing, codec, placement);
criterion_main!(benches);
