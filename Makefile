# Prism: the two commands of the README, and their parts.
#
#   make run    install what is missing, build, and run the demo
#   make test   install what is missing, build the guests and the host, run every test
#
# Everything builds with --release into one target/ (tests, benchmarks and the server share
# the heavy dependencies).

SHELL := /bin/bash
CARGO ?= cargo

# Debian 12 packages: build and run. python-matplotlib-data is there for its sample pictures
# only (a portrait and a transparent PNG the face tests use, tests/all/faces.rs), and
# libgstrtspserver-1.0-dev for the RTSP server the player's tests stream from.
APT_PACKAGES := \
	build-essential pkg-config clang libclang-dev \
	libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools \
	libopencv-dev opencv-data libtesseract-dev libleptonica-dev tesseract-ocr-eng \
	fonts-dejavu-core graphviz chromium \
	python-matplotlib-data libgstrtspserver-1.0-dev

# Sample filters (shipped) and test guests (built for the test suite only).
FILTERS := passthrough grayscale privacy platedetector faceoverlay
TEST_GUESTS := hostile probe wrong-world bad-import tint-v1 tint-v2
# Guests that only build for wasm32 (they use raw wit-bindgen exports).
NATIVE_EXCLUDES := --exclude wrong-world --exclude bad-import

DEMO_DIR := target/demo

.PHONY: all setup guests build run demo test lint fmt bench clean node-deps

all: build

setup:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v cargo >/dev/null || { echo "Rust is missing: install it with rustup (https://rustup.rs)"; exit 1; }
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@command -v npm >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; }

guests:
	$(CARGO) build --target wasm32-wasip2 --release $(addprefix -p ,$(FILTERS) $(TEST_GUESTS))

build: guests
	$(CARGO) build --release --workspace --all-targets $(NATIVE_EXCLUDES)
	@mkdir -p target/prism-filters
	@for f in $(FILTERS); do cp target/wasm32-wasip2/release/$$f.wasm target/prism-filters/; done

# Until the server lands, the demo shows the filter tool chain end to end: check the sample
# filters, run them over a generated clip, and measure the ABI.
demo:
	@mkdir -p $(DEMO_DIR)
	gst-launch-1.0 -q videotestsrc num-buffers=90 pattern=ball ! video/x-raw,width=640,height=480,framerate=30/1 \
		! videoconvert ! vp8enc deadline=1 ! webmmux ! filesink location=$(DEMO_DIR)/clip.webm
	@for f in $(FILTERS); do ./target/release/prism filter check target/wasm32-wasip2/release/$$f.wasm || exit 1; done
	./target/release/prism filter run target/wasm32-wasip2/release/grayscale.wasm \
		--input $(DEMO_DIR)/clip.webm --output $(DEMO_DIR)/gray.webm
	./target/release/prism filter run target/wasm32-wasip2/release/privacy.wasm \
		--input $(DEMO_DIR)/clip.webm --output $(DEMO_DIR)/private.webm \
		--config '{"regions":[{"x":200,"y":120,"width":240,"height":240}],"block":24}'
	./target/release/prism bench filter
	@echo "demo output in $(DEMO_DIR)/ (gray.webm, private.webm)"

run: setup build demo
	./target/release/prism serve

# The unmodified kurento-client (npm) that the protocol tests drive Prism with.
node-deps: tests/node/node_modules/kurento-client

tests/node/node_modules/kurento-client: tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --ignore-scripts --no-audit --no-fund

test: setup build node-deps
	$(CARGO) test --release --workspace $(NATIVE_EXCLUDES)

lint:
	@rustup component list --installed | grep -q '^clippy' && rustup component list --installed | grep -q '^rustfmt' \
		|| rustup component add clippy rustfmt
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets $(NATIVE_EXCLUDES) -- -D warnings
	$(CARGO) clippy --release --target wasm32-wasip2 $(addprefix -p ,$(FILTERS) hostile probe tint-v1 tint-v2) -- -D warnings

bench: build
	./target/release/prism bench filter
	./target/release/prism bench sessions --sessions 12 --seconds 10
	./target/release/prism bench registry

clean:
	$(CARGO) clean
