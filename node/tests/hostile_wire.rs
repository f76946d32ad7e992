//! A bounded property test of what arrives over the wire: random and mutated protobuf bytes
//! decoded as peer messages and confirmations and converted to domain types, and mutated partner cards. No
//! panic; every refusal names a field. Seeded; `ROTA_PROPTEST_RUNS` sets the count.

use prost::Message;
use rota_node::transport::convert::{
    citation_from_proto, confirmation_from_proto, confirmation_to_proto, envelope_from_proto, envelope_to_proto,
};
use rota_proto::peer as pb;

fn runs() -> u64 {
    std::env::var("ROTA_PROPTEST_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000)
}

fn valid_envelope() -> Vec<u8> {
    let e = pb::Envelope {
        message_id: "6b3c1c1e-8d9f-4a51-9b7a-2f4f0f6a1e10".into(),
        request_id: "DGW-17".into(),
        sequence: 3,
        sent_at_unix_ms: 1_800_000_000_000,
        body: Some(pb::envelope::Body::Supplier(pb::SupplierMessage {
            reason: 2,
            status: 3,
            due_date: "2027-01-31".into(),
            item_id: "39001".into(),
            answer: 2,
            ..Default::default()
        })),
    };
    e.encode_to_vec()
}

#[test]
fn random_and_mutated_peer_messages_are_refused_cleanly() {
    let base = valid_envelope();
    let mut accepted = 0;
    for seed in 0..runs() {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut bytes = if rng.bool() { base.clone() } else { (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect() };
        for _ in 0..rng.usize(0..6) {
            if bytes.is_empty() {
                break;
            }
            let i = rng.usize(..bytes.len());
            bytes[i] = rng.u8(..);
        }
        let Ok(env) = pb::Envelope::decode(&bytes[..]) else { continue };
        match envelope_from_proto(env) {
            // Whatever is accepted survives a round trip unchanged.
            Ok(domain) => {
                accepted += 1;
                assert_eq!(envelope_from_proto(envelope_to_proto(&domain)).unwrap(), domain, "seed {seed}");
            }
            Err(e) => assert!(!e.field.is_empty() && !e.reason.is_empty(), "seed {seed}: {e:?}"),
        }
        if let Ok(c) = pb::Citation::decode(&bytes[..]) {
            let _ = citation_from_proto(c);
        }
        // The same bytes as a partner's confirmation of a message we sent.
        if let Ok(c) = pb::Confirmation::decode(&bytes[..]) {
            match confirmation_from_proto(c) {
                Ok(domain) => {
                    assert_eq!(confirmation_from_proto(confirmation_to_proto(&domain)).unwrap(), domain, "seed {seed}")
                }
                Err(e) => assert!(e.field.starts_with("confirmation.") && !e.reason.is_empty(), "seed {seed}: {e:?}"),
            }
        }
    }
    assert!(accepted > 0, "the mutations never produced a valid message: the test would prove nothing");
}

#[test]
fn mutated_partner_cards_are_refused_cleanly() {
    let sym = rota_certs::Symbol::parse("DGW").unwrap();
    let ca = rota_certs::CaBundle::generate(&sym, "GWU").unwrap();
    let card = rota_certs::Card::new(sym, "GWU Libraries".into(), "https://127.0.0.1:7443".into(), ca.cert_pem)
        .unwrap()
        .to_text();
    for seed in 0..runs() / 5 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut bytes = card.clone().into_bytes();
        for _ in 0..rng.usize(1..5) {
            let i = rng.usize(..bytes.len());
            match rng.u8(..3) {
                0 => bytes[i] = rng.u8(..),
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, b"\n:-= #"[rng.usize(..6)]),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = rota_certs::Card::parse(&text) {
            assert!(!e.to_string().is_empty(), "seed {seed}");
        }
    }
}
