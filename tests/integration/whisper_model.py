"""A synthetic ggml whisper model, for running lucy's `whisper` engine
against the real whisper.cpp library where no trained model can be had
(none is packaged for Debian 12 and none is reachable from the test
machine).

    python3 whisper_model.py OUT.bin [random]

The file follows whisper.cpp's ggml format as its loader reads it
(whisper.cpp 1.9.1, src/whisper.cpp whisper_model_load): magic, the
hyper-parameters of an English model (51864 tokens) with one layer of 64
states, 80 mel filters, a vocabulary (bytes, GPT-2's space token at 220,
then " w<N>" words) and, with `random`, every tensor the loader expects,
seeded Gaussian weights (F16 matrices, F32 biases and norms). Without
`random` there are no tensors, which the loader takes as "an empty model
for testing" (it then finds no speech). Its words are nonsense: it checks
the plumbing (loading, decoding, token timestamps -> words), never
accuracy.
"""
import struct
import sys
N_VOCAB, N_CTX, N_STATE, N_HEAD, N_LAYER = 51864, 1500, 64, 1, 1


def write(path, random_weights):
    """Writes the model to path (see the module's docstring)."""
    n_vocab, n_ctx, n_state, n_head, n_layer = N_VOCAB, N_CTX, N_STATE, N_HEAD, N_LAYER
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 0x67676d6c))
        f.write(struct.pack("<11i", n_vocab, n_ctx, n_state, n_head, n_layer, 448, n_state, n_head, n_layer, 80, 1))
        f.write(struct.pack("<ii", 80, 201))
        f.write(b"\0" * (80 * 201 * 4))
        words = [bytes([i]) if 32 < i < 127 else b"<%d>" % i for i in range(256)] + [b" w%d" % i for i in range(256, 50256)]
        words[220] = b" "  # GPT-2's space token; whisper.cpp looks it up by text
        f.write(struct.pack("<i", len(words)))
        for w in words:
            f.write(struct.pack("<I", len(w)) + w)
    if not random_weights:
        return
    import random
    rng = random.Random(1)
    S, V, L = n_state, n_vocab, n_layer
    F32, F16 = 0, 1
    def block(prefix, cross=False):
        t = []
        names = [("attn_ln", None)] + ([("cross_attn_ln", None)] if cross else []) + [("mlp_ln", None)]
        for ln, _ in names:
            t += [(prefix + ln + ".weight", F32, [S], "one"), (prefix + ln + ".bias", F32, [S], "zero")]
        for att in ["attn"] + (["cross_attn"] if cross else []):
            t += [(prefix + att + ".query.weight", F16, [S, S], "rand"), (prefix + att + ".query.bias", F32, [S], "zero"),
                  (prefix + att + ".key.weight", F16, [S, S], "rand"),
                  (prefix + att + ".value.weight", F16, [S, S], "rand"), (prefix + att + ".value.bias", F32, [S], "zero"),
                  (prefix + att + ".out.weight", F16, [S, S], "rand"), (prefix + att + ".out.bias", F32, [S], "zero")]
        t += [(prefix + "mlp.0.weight", F16, [S, 4 * S], "rand"), (prefix + "mlp.0.bias", F32, [4 * S], "zero"),
              (prefix + "mlp.2.weight", F16, [4 * S, S], "rand"), (prefix + "mlp.2.bias", F32, [S], "zero")]
        return t
    tensors = [("encoder.positional_embedding", F32, [S, n_ctx], "rand"),
               ("encoder.conv1.weight", F16, [3, 80, S], "rand"), ("encoder.conv1.bias", F32, [1, S], "zero"),
               ("encoder.conv2.weight", F16, [3, S, S], "rand"), ("encoder.conv2.bias", F32, [1, S], "zero"),
               ("encoder.ln_post.weight", F32, [S], "one"), ("encoder.ln_post.bias", F32, [S], "zero")]
    for i in range(L):
        tensors += block("encoder.blocks.%d." % i)
    tensors += [("decoder.positional_embedding", F32, [S, 448], "rand"),
                ("decoder.token_embedding.weight", F16, [S, V], "rand"),
                ("decoder.ln.weight", F32, [S], "one"), ("decoder.ln.bias", F32, [S], "zero")]
    for i in range(L):
        tensors += block("decoder.blocks.%d." % i, cross=True)
    with open(path, "ab") as f:
        for name, ttype, ne, fill in tensors:
            n = 1
            for d in ne:
                n *= d
            vals = [1.0] * n if fill == "one" else [0.0] * n if fill == "zero" else \
                [rng.gauss(0, 0.5) for _ in range(n)]
            nb = name.encode()
            f.write(struct.pack("<iii", len(ne), len(nb), ttype) + struct.pack("<%di" % len(ne), *ne) + nb)
            f.write(struct.pack("<%d%s" % (n, "e" if ttype == F16 else "f"), *vals))


if __name__ == "__main__":
    write(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "random")
