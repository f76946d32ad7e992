//! Any text as a partner card: parsing must never panic, and a card that parses must
//! print and parse back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(card) = rota_certs::Card::parse(&text) {
        let again = rota_certs::Card::parse(&card.to_text()).expect("a printed card parses");
        assert_eq!(again.fingerprint(), card.fingerprint());
        assert_eq!(again.symbol, card.symbol);
    }
});
