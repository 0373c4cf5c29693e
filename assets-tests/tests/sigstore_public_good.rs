//! The keyless verifier against signatures made by the real Sigstore: bundles and PyPI
//! attestations from PyPI's `pypi-attestations` 0.0.31 test assets (public-good and staging
//! instances, GitHub Actions, GitLab, CircleCI and email identities), checked offline with
//! the embedded public-good root or the staging root from PyPI's `sigstore` 4.5.1; each
//! verifies, and each refuses a changed signature, statement, certificate or identity.

use assets_tests::workspace;
use image_factory::sign::sigstore::{Bundle, IssuerMatch, KeylessPolicy, TrustRoot};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn vectors() -> PathBuf {
    workspace().join("fixtures/vectors")
}

struct Vector {
    file: &'static str,
    artifact: &'static str,
    identity: &'static str,
    issuer: &'static str,
    staging: bool,
}

const GITHUB: &str = "https://token.actions.githubusercontent.com";

const VECTORS: &[Vector] = &[
    Vector {
        file: "pypi_attestation_models-0.0.4a2.tar.gz.sigstore",
        artifact: "pypi_attestation_models-0.0.4a2.tar.gz",
        identity: "https://github.com/trailofbits/pypi-attestation-models/.github/workflows/release.yml@refs/tags/v0.0.4a2",
        issuer: GITHUB,
        staging: false,
    },
    Vector {
        file: "pypi_attestations-0.0.19.tar.gz.publish.attestation",
        artifact: "pypi_attestations-0.0.19.tar.gz",
        identity: "https://github.com/trailofbits/pypi-attestations/.github/workflows/release.yml@refs/tags/v0.0.19",
        issuer: GITHUB,
        staging: false,
    },
    Vector {
        file: "pypi_attestations-0.0.19.tar.gz.slsa.attestation",
        artifact: "pypi_attestations-0.0.19.tar.gz",
        identity: "https://github.com/trailofbits/pypi-attestations/.github/workflows/release.yml@refs/tags/v0.0.19",
        issuer: GITHUB,
        staging: false,
    },
    Vector {
        file: "gitlab_oidc_project-0.0.3.tar.gz.publish.attestation",
        artifact: "gitlab_oidc_project-0.0.3.tar.gz",
        identity: "https://gitlab.com/facutuesca/gitlab-oidc-project//.gitlab-ci.yml@refs/heads/main",
        issuer: "https://gitlab.com",
        staging: false,
    },
    Vector {
        file: "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl.publish.attestation",
        artifact: "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl",
        identity: "https://circleci.com/api/v2/projects/fdd9283f-e619-46af-8f9c-851f7d3e8b2b/pipeline-definitions/8e4f8ab2-8d7c-4827-9f15-de076d6d647f",
        issuer: "https://oidc.circleci.com",
        staging: false,
    },
    Vector {
        file: "rfc8785-0.1.2-py3-none-any.whl.sigstore",
        artifact: "rfc8785-0.1.2-py3-none-any.whl",
        identity: "william@yossarian.net",
        issuer: "https://github.com/login/oauth",
        staging: true,
    },
];

/// A vector as a bundle: `.sigstore` files are bundles; a PyPI attestation holds the same
/// material under other names.
fn bundle_json(vector: &Vector) -> Value {
    let path = vectors().join(vector.file);
    let text = std::fs::read(&path)
        .unwrap_or_else(|error| panic!("{}: {error} (run `cargo xtask fixtures`)", path.display()));
    let value: Value = serde_json::from_slice(&text).unwrap();
    if value.get("mediaType").is_some() {
        return value;
    }
    let material = &value["verification_material"];
    json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": { "rawBytes": material["certificate"] },
            "tlogEntries": material["transparency_entries"],
        },
        "dsseEnvelope": {
            "payload": value["envelope"]["statement"],
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{ "sig": value["envelope"]["signature"] }],
        },
    })
}

fn trust_root(vector: &Vector) -> TrustRoot {
    if vector.staging {
        let path = vectors().join("staging-trusted_root.json");
        TrustRoot::from_json(&std::fs::read(path).unwrap()).unwrap()
    } else {
        TrustRoot::public_good().unwrap()
    }
}

fn policy(vector: &Vector, identity: &str) -> KeylessPolicy {
    KeylessPolicy {
        trust_root: trust_root(vector),
        subject: regex::Regex::new(&format!("^{}$", regex::escape(identity))).unwrap(),
        issuer: IssuerMatch::Exact(vector.issuer.into()),
    }
}

fn verify(vector: &Vector, identity: &str, bundle: &Value) -> Result<(), String> {
    let bundle = Bundle::parse(&serde_json::to_vec(bundle).unwrap()).map_err(|e| e.to_string())?;
    policy(vector, identity)
        .verify_bundle(&bundle)
        .map(drop)
        .map_err(|error| error.to_string())
}

fn flip_base64(value: &mut Value, at: usize) {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut bytes = engine.decode(value.as_str().unwrap()).unwrap();
    bytes[at] ^= 0x01;
    *value = Value::String(engine.encode(bytes));
}

#[test]
fn real_sigstore_signatures_verify_offline() {
    for vector in VECTORS {
        let bundle = bundle_json(vector);
        verify(vector, vector.identity, &bundle)
            .unwrap_or_else(|error| panic!("{}: {error}", vector.file));

        let parsed = Bundle::parse(&serde_json::to_vec(&bundle).unwrap()).unwrap();
        let statement = parsed.statement().unwrap();
        let artifact = std::fs::read(vectors().join(vector.artifact)).unwrap();
        let digest = image_factory::hex::encode(&Sha256::digest(&artifact));
        assert!(
            statement
                .subjects
                .iter()
                .any(|subject| subject.name == vector.artifact
                    && subject.digest.get("sha256") == Some(&digest)),
            "{}: the statement names the artifact",
            vector.file
        );
    }
}

#[test]
fn real_sigstore_signatures_refuse_every_change() {
    for vector in VECTORS {
        let bundle = bundle_json(vector);
        let refused = |bundle: &Value, identity: &str, step: &str, case: &str| {
            let error = verify(vector, identity, bundle)
                .expect_err(&format!("{}: {case} is refused", vector.file));
            assert!(
                error.to_lowercase().contains(step),
                "{}: {case}: the error names {step:?}: {error}",
                vector.file
            );
        };

        refused(
            &bundle,
            "someone@example.com",
            "identity",
            "another identity",
        );

        let mut signature = bundle.clone();
        flip_base64(&mut signature["dsseEnvelope"]["signatures"][0]["sig"], 12);
        refused(
            &signature,
            vector.identity,
            "signature",
            "a changed signature",
        );

        let mut statement = bundle.clone();
        flip_base64(&mut statement["dsseEnvelope"]["payload"], 40);
        refused(
            &statement,
            vector.identity,
            "signature",
            "a changed statement",
        );

        let mut certificate = bundle.clone();
        let raw = &mut certificate["verificationMaterial"]["certificate"]["rawBytes"];
        // A byte inside the subject public key: the CA's signature no longer covers it.
        flip_base64(raw, 300);
        let error = verify(vector, vector.identity, &certificate).unwrap_err();
        assert!(
            error.contains("Fulcio") || error.contains("certificate"),
            "{}: a changed certificate: {error}",
            vector.file
        );

        let mut set = bundle.clone();
        let entry = &mut set["verificationMaterial"]["tlogEntries"][0];
        entry["integratedTime"] = Value::String(
            (entry["integratedTime"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                + 1)
            .to_string(),
        );
        entry.as_object_mut().unwrap().remove("inclusionProof");
        refused(
            &set,
            vector.identity,
            "signed entry timestamp",
            "a changed log time",
        );

        let mut proof = bundle.clone();
        let entry = &mut proof["verificationMaterial"]["tlogEntries"][0];
        entry.as_object_mut().unwrap().remove("inclusionPromise");
        flip_base64(&mut entry["inclusionProof"]["hashes"][0], 0);
        refused(
            &proof,
            vector.identity,
            "inclusion proof",
            "a changed audit path",
        );
    }
    let other_root = KeylessPolicy {
        trust_root: TrustRoot::public_good().unwrap(),
        ..policy(&VECTORS[5], VECTORS[5].identity)
    };
    let staging = Bundle::parse(&serde_json::to_vec(&bundle_json(&VECTORS[5])).unwrap()).unwrap();
    let error = other_root.verify_bundle(&staging).unwrap_err().to_string();
    assert!(
        error.contains("Fulcio"),
        "a staging certificate under the public-good root: {error}"
    );
}
