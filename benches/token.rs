//! Write tokens: signing after a write and verifying on a read.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use meridian::request::tokens::KeyRing;

fn bench(c: &mut Criterion) {
    let ring =
        KeyRing::from_keys(vec![("k2".into(), vec![2; 32]), ("k1".into(), vec![1; 32])]).unwrap();
    let now = 1_800_000_000_000u64;
    c.bench_function("token/sign_write", |b| {
        b.iter(|| ring.sign_write(black_box("eu-west-1"), now + 5_000))
    });
    let token = ring.sign_write("eu-west-1", now + 5_000);
    c.bench_function("token/verify_write", |b| {
        b.iter(|| ring.verify_write(black_box(&token), now).unwrap())
    });
    let tampered = token.replacen("eu-west-1", "us-east-1", 1);
    c.bench_function("token/verify_tampered", |b| {
        b.iter(|| ring.verify_write(black_box(&tampered), now).unwrap_err())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
