//! Writes the seed corpora under `seeds/<target>/` (run from `fuzz/`):
//!
//! ```text
//! cargo run --release --example make_seeds -- ../tests/vectors/v4.json seeds
//! ```
//!
//! It also rewrites `regressions/differential/` (beside `seeds/`).
//!
//! Seeds: the official v4.public vectors (tokens, footers, and the same cases re-signed through
//! the differential target's structured input), the tokens the library issues in the verify
//! fixture, and one structured case per mutation kind.

use std::fs;
use std::path::{Path, PathBuf};
use tessera_fuzz::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let vectors = args.get(1).expect("path to v4.json");
    let out = PathBuf::from(args.get(2).map(String::as_str).unwrap_or("seeds"));
    let (verify, footer, diff) = (
        out.join("verify"),
        out.join("footer"),
        out.join("differential"),
    );
    let claims = out.join("claims");
    for d in [&verify, &footer, &diff, &claims] {
        let _ = fs::remove_dir_all(d);
    }

    // Official vectors.
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(vectors).unwrap()).unwrap();
    for t in json["tests"].as_array().unwrap() {
        let token = t["token"].as_str().unwrap();
        if !token.starts_with(HEADER) {
            continue;
        }
        let name = t["name"].as_str().unwrap();
        let foot = t["footer"].as_str().unwrap_or("").as_bytes().to_vec();
        let implicit = t["implicit-assertion"]
            .as_str()
            .unwrap_or("")
            .as_bytes()
            .to_vec();
        write(&verify, &format!("vector-{name}"), token.as_bytes());
        if !foot.is_empty() {
            write(&footer, &format!("vector-{name}"), &foot);
        }
        let raw = DiffCase::Raw {
            token: token.as_bytes().to_vec(),
            implicit: implicit.clone(),
        };
        write(&diff, &format!("vector-{name}-raw"), &raw.encode());
        if let Some(payload) = t["payload"].as_str() {
            write(&claims, &format!("vector-{name}"), payload.as_bytes());
            // Signing the vector's case with the vectors' key reproduces its token.
            let again = pasetors::version4::PublicToken::sign(
                &keys().vector.pasetors,
                payload.as_bytes(),
                (!foot.is_empty()).then_some(&foot[..]),
                (!implicit.is_empty()).then_some(&implicit[..]),
            )
            .unwrap();
            assert_eq!(again, token, "vector {name} reproduces");
            println!("vector {name}: re-signed token identical");
            let case = DiffCase::Signed {
                flags: 1,
                payload: payload.as_bytes().to_vec(),
                footer: foot,
                implicit,
                mutations: vec![],
            };
            write(&diff, &format!("vector-{name}-signed"), &case.encode());
        }
    }

    // Tokens the library issued.
    let fx = verify_fixture();
    for (i, base) in fx.bases.iter().enumerate() {
        let name = base.name;
        write(&verify, &format!("issued-{name}"), base.token.as_bytes());
        let mutate = |ops: Vec<VerifyOp>| VerifyInput::Mutate { base: i as u8, ops }.encode();
        write(&verify, &format!("mutate-{name}"), &mutate(vec![]));
        write(
            &verify,
            &format!("signed-{name}"),
            &VerifyInput::Signed(SignedCase {
                selector: 0xC0
                    | if name == "verify-only-key" {
                        1
                    } else if name == "unknown-key" {
                        2
                    } else {
                        0
                    },
                footer: None,
                payload: base.payload.clone(),
            })
            .encode(),
        );
        write(&footer, &format!("issued-{name}"), &base.footer);
        write(&claims, &format!("issued-{name}"), &base.payload);
        write(
            &diff,
            &format!("issued-{name}-raw"),
            &DiffCase::Raw {
                token: base.token.as_bytes().to_vec(),
                implicit: vec![],
            }
            .encode(),
        );
    }
    let ops: Vec<(&str, Vec<VerifyOp>)> = vec![
        ("body-xor", vec![VerifyOp::BodyXor { pos: 5, xor: 1 }]),
        (
            "sig-xor",
            vec![VerifyOp::BodyXor {
                pos: 0xffff,
                xor: 0x80,
            }],
        ),
        (
            "trailing-bits",
            vec![VerifyOp::TrailingBits { which: 0, bits: 1 }],
        ),
        ("pad", vec![VerifyOp::Pad { which: 0, n: 0 }]),
        ("dot", vec![VerifyOp::Segment { kind: 0 }]),
        ("no-footer", vec![VerifyOp::Segment { kind: 1 }]),
        (
            "footer-splice",
            vec![VerifyOp::FooterSplice {
                pos: 1,
                del: 0,
                bytes: b"\"a\":1,".to_vec(),
            }],
        ),
        (
            "payload-splice",
            vec![VerifyOp::PayloadSplice {
                pos: 1,
                del: 0,
                bytes: b"\"x\":1,".to_vec(),
            }],
        ),
        (
            "replace",
            vec![VerifyOp::Replace {
                pos: 20,
                byte: b'A',
            }],
        ),
    ];
    for (name, ops) in ops {
        write(
            &verify,
            &format!("op-{name}"),
            &VerifyInput::Mutate { base: 0, ops }.encode(),
        );
    }
    let payload = &fx.bases[0].payload;
    write(
        &verify,
        "signed-custom-footer",
        &VerifyInput::Signed(SignedCase {
            selector: 0xC4,
            footer: Some(format!("{{\"kid\":\"{}\",\"x\":1}}", fx.kids[0]).into_bytes()),
            payload: payload.clone(),
        })
        .encode(),
    );

    // Footers the parser must refuse.
    for (i, bad) in [
        "{\"kid\":123}",
        "{\"kid\":null}",
        "{\"kid\":\"k4.pid.short\"}",
        "[]",
        "not json",
        "{\"kid\":{\"a\":1}}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}",
    ]
    .iter()
    .enumerate()
    {
        write(&footer, &format!("bad-{i}"), bad.as_bytes());
    }

    // One differential case per mutation kind, on a library payload and footer.
    let base = &fx.bases[0];
    let muts: Vec<(&str, Vec<Mutation>)> = vec![
        ("honest", vec![]),
        (
            "flip-token-byte",
            vec![Mutation::FlipTokenByte { pos: 30, xor: 1 }],
        ),
        ("flip-sig-bit", vec![Mutation::FlipSigBit { bit: 300 }]),
        (
            "key-identity",
            vec![Mutation::Key {
                which: 0,
                random: [0; 32],
            }],
        ),
        (
            "key-noncanonical",
            vec![Mutation::Key {
                which: 15,
                random: [0; 32],
            }],
        ),
        (
            "key-random",
            vec![Mutation::Key {
                which: 16,
                random: [7; 32],
            }],
        ),
        ("s-plus-l", vec![Mutation::SPlusL]),
        ("append-dot", vec![Mutation::AppendDot]),
        (
            "remove-dot",
            vec![Mutation::AppendDot, Mutation::RemoveTrailingDot],
        ),
        ("pad", vec![Mutation::Pad { which: 0 }]),
        ("weak-key-forge", vec![Mutation::WeakKeyForge { i: 0 }]),
        ("small-order-r", vec![Mutation::SmallOrderR { i: 0 }]),
        ("wrong-implicit", vec![Mutation::WrongImplicit]),
    ];
    for (name, mutations) in muts {
        let case = DiffCase::Signed {
            flags: 0,
            payload: base.payload.clone(),
            footer: base.footer.clone(),
            implicit: b"tessera".to_vec(),
            mutations,
        };
        write(&diff, &format!("mutation-{name}"), &case.encode());
    }
    // The two inputs of finding F1 (cofactored-only signatures): kept as regressions, not
    // seeds, since the target stops on them unless TESSERA_FUZZ_ALLOW_COFACTORED=1.
    let regressions = out
        .parent()
        .unwrap_or(Path::new("."))
        .join("regressions")
        .join("differential");
    for (name, mutations) in [
        ("cofactored-torsion-r", vec![Mutation::TorsionR { i: 1 }]),
        ("cofactored-mixed-key", vec![Mutation::MixedKey { i: 4 }]),
    ] {
        let case = DiffCase::Signed {
            flags: 0,
            payload: base.payload.clone(),
            footer: base.footer.clone(),
            implicit: b"tessera".to_vec(),
            mutations,
        };
        write(&regressions, name, &case.encode());
    }
    // The empty-footer-segment difference, without a footer.
    let case = DiffCase::Signed {
        flags: 0,
        payload: base.payload.clone(),
        footer: vec![],
        implicit: vec![],
        mutations: vec![Mutation::AppendDot],
    };
    write(&diff, "mutation-append-dot-no-footer", &case.encode());
    let binary = DiffCase::Signed {
        flags: 0,
        payload: vec![0xff, 0xfe, 0x00, 0x80],
        footer: vec![0xc3],
        implicit: vec![],
        mutations: vec![],
    };
    write(&diff, "binary-payload", &binary.encode());
    // Claims in and out of the issuer's canonical layout, for the `claims` target.
    let canonical = String::from_utf8(fx.bases[0].payload.clone()).unwrap();
    let four_grants = r#"{"iss":"tessera","jti":"0b6f1c4e-2a57-4d0e-9a4c-3f1d2e5b7a90","ver":3,"sub":"api-token:ci-bot","iat":"2026-11-28T01:02:03Z","nbf":"2026-11-28T01:02:03Z","exp":"2026-12-28T01:02:03Z","perm":{"grants":[{"resource":"devtron-app","role":"trigger","project":"payments","environments":["prod","staging"],"apps":["*"]},{"resource":"helm-app","role":"edit","project":"infra","environments":["prod-cluster__monitoring"],"apps":["graf*"]},{"resource":"kubernetes","role":"view","cluster":"prod","namespaces":["*"],"groups":["","apps"],"kinds":["Deployment","Pod"],"names":["*"]},{"resource":"chart-group","role":"view","groups":["*"]}]}}"#;
    write(&claims, "four-grants", four_grants.as_bytes());
    let variants = [
        ("offset", canonical.replacen("Z\"", "+01:00\"", 1)),
        ("fraction", canonical.replacen("Z\"", ".5Z\"", 1)),
        ("space", canonical.replacen(",", ", ", 1)),
        (
            "escape",
            canonical.replacen("fuzz-bot", "fuzz\\u002dbot", 1),
        ),
        ("unknown-claim", canonical.replacen("{", "{\"x\":1,", 1)),
        (
            "leading-zero",
            canonical.replacen("\"ver\":1", "\"ver\":01", 1),
        ),
        ("leap-second", canonical.replacen(":00Z\"", ":60Z\"", 1)),
        ("year-zero", canonical.replacen("2026-", "0000-", 1)),
        (
            "chart-group-empty",
            four_grants.replacen("\"groups\":[\"*\"]", "\"groups\":[\"\"]", 1),
        ),
    ];
    for (name, text) in variants {
        write(&claims, &format!("variant-{name}"), text.as_bytes());
    }

    for d in [&verify, &footer, &diff, &claims] {
        println!(
            "{}: {} seeds",
            d.display(),
            fs::read_dir(d).unwrap().count()
        );
    }
}
