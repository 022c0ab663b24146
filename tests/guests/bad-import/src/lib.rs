//! A filter that also imports `evil:net/socket`, which the host does not give filters.

wit_bindgen::generate!({
    path: ["../../../wit/filter.wit", "wit/world.wit"],
    world: "evil:net/bad-import",
    generate_all,
});

use exports::prism::filter::filter::{FilterInfo, Guest};
use prism::filter::types::{Frame, PixelFormat};

struct Component;

impl Guest for Component {
    fn describe() -> FilterInfo {
        FilterInfo {
            name: "bad-import".into(),
            version: "0.1.0".into(),
            description: "Wants the network.".into(),
            format: PixelFormat::Gray8,
            parameters_schema: "{}".into(),
        }
    }

    fn configure(config_json: String) -> Result<(), String> {
        evil::net::socket::connect(&config_json);
        Ok(())
    }

    fn process(_frame: &Frame) -> Result<(), String> {
        Ok(())
    }

    fn end_of_stream() -> Result<(), String> {
        Ok(())
    }
}

export!(Component);
