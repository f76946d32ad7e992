//! The architecture invariants that the layout enforces (docs/ARCHITECTURE.md, 1 and 2):
//! outside `node/src/transport/`, the node's modules never name the wire types.

use std::path::Path;

#[test]
fn only_the_transport_layer_and_the_demo_know_the_wire() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue; // transport/ is a directory, and may
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let names_wire = ["rota_proto", "tonic::", "use tonic", "prost::"].iter().any(|w| text.contains(w));
        // The demo drives its nodes from outside, as a staff API client, like the CLI.
        if name == "demo.rs" {
            assert!(names_wire, "demo.rs talks to its nodes over the staff API");
        } else {
            assert!(!names_wire, "node/src/{name} names a wire type: convert in transport/convert.rs instead");
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} modules found in {}", src.display());
}
