//! Schematic throughput: strict parse, canonical emission and ID of a realistic schematic.

use criterion::{Criterion, criterion_group, criterion_main};
use image_factory::schematic::Schematic;
use std::hint::black_box;

const FULL: &str = include_str!("../fixtures/schematics/full.yaml");

fn schematic(c: &mut Criterion) {
    c.bench_function("schematic/parse", |b| {
        b.iter(|| Schematic::parse(black_box(FULL.as_bytes())))
    });
    let parsed = Schematic::parse(FULL.as_bytes()).expect("fixture parses");
    c.bench_function("schematic/canonical+id", |b| {
        b.iter(|| black_box(&parsed).id())
    });
}

criterion_group!(benches, schematic);
criterion_main!(benches);
