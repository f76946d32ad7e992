//! Any bytes as a peer-API message or a partner's confirmation: decoding and conversion to domain types must never
//! panic, and whatever is accepted must survive a round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use rota_node::transport::convert::{
    citation_from_proto, confirmation_from_proto, confirmation_to_proto, envelope_from_proto, envelope_to_proto,
};
use rota_proto::peer as pb;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = pb::Envelope::decode(data)
        && let Ok(domain) = envelope_from_proto(env)
    {
        assert_eq!(envelope_from_proto(envelope_to_proto(&domain)).ok(), Some(domain));
    }
    if let Ok(c) = pb::LocateRequest::decode(data)
        && let Some(c) = c.citation
    {
        let _ = citation_from_proto(c);
    }
    if let Ok(c) = pb::Confirmation::decode(data)
        && let Ok(domain) = confirmation_from_proto(c)
    {
        assert_eq!(confirmation_from_proto(confirmation_to_proto(&domain)).ok(), Some(domain));
    }
});
