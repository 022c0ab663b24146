//! A component for another world: exports `other:thing/api`, not the filter interface.

wit_bindgen::generate!({ path: "wit", world: "other" });

struct Component;

impl exports::other::thing::api::Guest for Component {
    fn greet(name: String) -> String {
        format!("hello {name}")
    }
}

export!(Component);
