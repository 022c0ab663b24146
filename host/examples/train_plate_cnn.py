#!/usr/bin/env python3
"""Trains the plate reader's convolutional glyph classifier (`host/models/plate-glyphs.bin`).

The examples come from the Rust data recipe (`plate_glyphs.rs`), cut by the run-time
segmenter and normalised by the run-time `char_patch`, so this script only learns:

    cargo run --release -p prism --example plate_glyphs -- \\
        --ocr-us ../shared/data/alpr/ocr-us --out /tmp/glyphs.bin
    python3 -m venv /tmp/jax && /tmp/jax/bin/pip install jax
    /tmp/jax/bin/python host/examples/train_plate_cnn.py /tmp/glyphs.bin host/models/plate-glyphs.bin

Network (run by `prism::vision::classifier::Cnn`): 28x20 patch -> conv3x3 C1 + ReLU -> max-pool 2
-> conv3x3 C2 + ReLU -> max-pool 2 -> conv3x3 C3 + ReLU -> dense H + ReLU -> dense 37 (softmax).
Convolutions are zero-padded ("same"). Trained with Adam, cosine-decayed learning rate,
label smoothing, and each batch shifted by up to a pixel and its contrast jittered.

File: `PRISMCN1`, u32 LE C1, C2, C3, H, classes, then the tensors as f32 LE in order
conv1 w [C1,1,3,3], b; conv2 w [C2,C1,3,3], b; conv3 w [C3,C2,3,3], b; dense1 w [H, C3*7*5]
(inputs in channel, row, column order), b; dense2 w [classes, H], b.
"""
import os
import struct
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

PATCH_W, PATCH_H = 20, 28
CLASSES = 37
# The network's sizes, the epochs and the seed may be changed for an experiment through the
# environment (PRISM_CNN="C1,C2,C3,H", PRISM_EPOCHS, PRISM_SEED); the defaults are the shipped run.
C1, C2, C3, HIDDEN = (int(v) for v in os.environ.get("PRISM_CNN", "16,32,48,128").split(","))
EPOCHS = int(os.environ.get("PRISM_EPOCHS", "24"))
BATCH = 128
LR = 2e-3
SEED = int(os.environ.get("PRISM_SEED", "7"))


def load(path):
    raw = open(path, "rb").read()
    assert raw[:8] == b"PRISMDS1", "not a glyph dump"
    n_train, n_held = struct.unpack_from("<II", raw, 8)
    rec = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n_train + n_held, 1 + PATCH_W * PATCH_H)
    y = rec[:, 0].astype(np.int32)
    x = (rec[:, 1:].astype(np.float32) / 255.0).reshape(-1, 1, PATCH_H, PATCH_W)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def init(key):
    ks = jax.random.split(key, 5)

    def he(k, shape, fan_in):
        return jax.random.normal(k, shape) * np.sqrt(2.0 / fan_in)

    flat = C3 * (PATCH_H // 4) * (PATCH_W // 4)
    return {
        "c1": he(ks[0], (C1, 1, 3, 3), 9), "b1": jnp.zeros(C1),
        "c2": he(ks[1], (C2, C1, 3, 3), 9 * C1), "b2": jnp.zeros(C2),
        "c3": he(ks[2], (C3, C2, 3, 3), 9 * C2), "b3": jnp.zeros(C3),
        "d1": he(ks[3], (HIDDEN, flat), flat), "e1": jnp.zeros(HIDDEN),
        "d2": he(ks[4], (CLASSES, HIDDEN), HIDDEN), "e2": jnp.zeros(CLASSES),
    }


def conv(x, w, b):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return jax.nn.relu(y + b[None, :, None, None])


def pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def logits(p, x, key=None):
    h = pool(conv(x, p["c1"], p["b1"]))
    h = pool(conv(h, p["c2"], p["b2"]))
    h = conv(h, p["c3"], p["b3"])
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(h @ p["d1"].T + p["e1"])
    if key is not None:
        keep = jax.random.bernoulli(key, 0.7, h.shape)
        h = jnp.where(keep, h / 0.7, 0.0)
    return h @ p["d2"].T + p["e2"]


def augment(key, x):
    """Shifts each patch by up to a pixel either way and jitters its contrast."""
    k1, k2, k3 = jax.random.split(key, 3)
    n = x.shape[0]
    pad = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dx = jax.random.randint(k1, (n,), 0, 3)
    dy = jax.random.randint(k2, (n,), 0, 3)

    def crop(img, oy, ox):
        return jax.lax.dynamic_slice(img, (0, oy, ox), (1, PATCH_H, PATCH_W))

    x = jax.vmap(crop)(pad, dy, dx)
    gain = jax.random.uniform(k3, (n, 1, 1, 1), minval=0.75, maxval=1.1)
    return jnp.clip(x * gain, 0.0, 1.0)


def loss_fn(p, x, y, key):
    z = logits(p, x, key)
    target = jax.nn.one_hot(y, CLASSES) * 0.95 + 0.05 / CLASSES
    return -jnp.mean(jnp.sum(target * jax.nn.log_softmax(z), axis=1))


@jax.jit
def step(p, m, v, t, x, y, key, lr):
    ka, kd = jax.random.split(key)
    x = augment(ka, x)
    loss, g = jax.value_and_grad(loss_fn)(p, x, y, kd)
    b1, b2 = 0.9, 0.999
    m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
    v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
    mh = jax.tree_util.tree_map(lambda m: m / (1 - b1**t), m)
    vh = jax.tree_util.tree_map(lambda v: v / (1 - b2**t), v)
    p = jax.tree_util.tree_map(lambda p, a, b: p - lr * (a / (jnp.sqrt(b) + 1e-8) + 1e-4 * p), p, mh, vh)
    return p, m, v, loss


@jax.jit
def predict(p, x):
    return jnp.argmax(logits(p, x), axis=1)


def accuracy(p, x, y):
    pred = np.concatenate([np.asarray(predict(p, x[i : i + 1024])) for i in range(0, len(x), 1024)])
    return float(np.mean(pred == y)), pred


def save(p, path):
    with open(path, "wb") as f:
        f.write(b"PRISMCN1")
        f.write(struct.pack("<5I", C1, C2, C3, HIDDEN, CLASSES))
        for name in ["c1", "b1", "c2", "b2", "c3", "b3", "d1", "e1", "d2", "e2"]:
            f.write(np.asarray(p[name], dtype="<f4").tobytes())


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: train_plate_cnn.py GLYPHS.bin OUT.bin")
    (x, y), (hx, hy) = load(sys.argv[1])
    print(f"{len(x)} training examples, {len(hx)} held out")
    key = jax.random.PRNGKey(SEED)
    key, k = jax.random.split(key)
    p = init(k)
    m = jax.tree_util.tree_map(jnp.zeros_like, p)
    v = jax.tree_util.tree_map(jnp.zeros_like, p)
    rng = np.random.default_rng(SEED)
    steps_per_epoch = len(x) // BATCH
    total = EPOCHS * steps_per_epoch
    t = 0
    started = time.time()
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x))
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * BATCH : (i + 1) * BATCH]
            t += 1
            lr = LR * 0.5 * (1 + np.cos(np.pi * t / total))
            key, k = jax.random.split(key)
            p, m, v, loss = step(p, m, v, t, x[idx], y[idx], k, lr)
            losses.append(loss)
        held = accuracy(p, hx, hy)[0] if len(hx) else float("nan")
        print(f"epoch {epoch:>2}: loss {float(np.mean(losses)):.4f}, held-out {held * 100:.2f}% ({time.time() - started:.0f} s)")
    if len(hx):
        acc, pred = accuracy(p, hx, hy)
        names = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ#"
        conf = {}
        for a, b in zip(hy, pred):
            if a != b:
                conf[(names[a], names[b])] = conf.get((names[a], names[b]), 0) + 1
        top = sorted(conf.items(), key=lambda kv: -kv[1])[:8]
        print(f"held-out real glyphs: {acc * 100:.2f}% of {len(hx)} (top confusions truth->read: {top})")
    save(p, sys.argv[2])
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
