"""Write spark-perf's tiny llama.cpp test model: `cargo xtask tiny-model` runs this.

A Llama-architecture GGUF with random weights from a fixed seed, small
enough that prefill and decode on one CPU core take milliseconds per token,
and a real tokenizer: Llama 3's byte-level BPE vocabulary, copied from the
vocabulary-only GGUF that llama.cpp vendors, plus Llama 3's chat template.
The model says nothing sensible; it exists to be served by a real
llama-server so that spark-perf meets a real tokenizer, a real loading phase
and real prefill. The same inputs give byte-identical output.

usage: tiny_model.py VOCAB_GGUF OUT_GGUF  (gguf-py and numpy on sys.path)
"""

import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

SEED = 20251215
N_EMBD = 256
N_LAYER = 6
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 768
CONTEXT_LENGTH = 8192
HEAD_DIM = N_EMBD // N_HEAD

# Llama 3's chat template (as in Meta-Llama-3-8B-Instruct), so that
# /v1/chat/completions renders messages the way an instruct model does.
CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}"
    "{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

# The tokenizer's keys, copied verbatim from the vocabulary file.
TOKENIZER_KEYS = [
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
]


def copy_tokenizer(reader, writer):
    for key in TOKENIZER_KEYS:
        field = reader.fields[key]
        value = field.contents()
        kind = field.types[0]
        if kind == GGUFValueType.ARRAY:
            writer.add_array(key, value)
        elif kind == GGUFValueType.STRING:
            writer.add_string(key, value)
        elif kind == GGUFValueType.UINT32:
            writer.add_uint32(key, value)
        else:
            raise SystemExit(f"unexpected type {kind} for {key}")
    return len(reader.fields["tokenizer.ggml.tokens"].contents())


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    vocab_path, out_path = sys.argv[1], sys.argv[2]
    reader = GGUFReader(vocab_path)
    writer = GGUFWriter(out_path, "llama")
    writer.add_name("spark-perf tiny llama")
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(1)  # mostly f16
    n_vocab = copy_tokenizer(reader, writer)
    writer.add_vocab_size(n_vocab)
    writer.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(SEED)

    def weight(*shape):
        # numpy shapes are ggml's ne reversed: (rows = outputs, columns = inputs).
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    def norm():
        return np.ones(N_EMBD, dtype=np.float32)

    # No output.weight: llama.cpp ties the output projection to token_embd.
    writer.add_tensor("token_embd.weight", weight(n_vocab, N_EMBD))
    writer.add_tensor("output_norm.weight", norm())
    for layer_idx in range(N_LAYER):
        blk = f"blk.{layer_idx}"
        writer.add_tensor(f"{blk}.attn_norm.weight", norm())
        writer.add_tensor(f"{blk}.attn_q.weight", weight(N_HEAD * HEAD_DIM, N_EMBD))
        writer.add_tensor(f"{blk}.attn_k.weight", weight(N_HEAD_KV * HEAD_DIM, N_EMBD))
        writer.add_tensor(f"{blk}.attn_v.weight", weight(N_HEAD_KV * HEAD_DIM, N_EMBD))
        writer.add_tensor(f"{blk}.attn_output.weight", weight(N_EMBD, N_HEAD * HEAD_DIM))
        writer.add_tensor(f"{blk}.ffn_norm.weight", norm())
        writer.add_tensor(f"{blk}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_down.weight", weight(N_EMBD, N_FF))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
