"""Reference renderings of the chat templates in models/templates/ for the model families Ward
serves (Qwen2.5, Llama 3.1/3.2/3.3, the DeepSeek-R1 distills, Qwen3): every conversation of
inputs.FAMILY_CONVERSATIONS through every template, with and without the generation prompt and
with each set of extra variables in inputs.FAMILY_KWARGS, written to
fixtures/templates-families.json in templates.json's format (plus each case's `tools`,
`kwargs` and, where jinja2 raised, `error` instead of `rendered`).

Needs only jinja2 (make-fixtures.sh's venv has it, or `python3 -m venv v && v/bin/pip install
jinja2`). Rendered as transformers' apply_chat_template renders: its jinja2 environment
(trim_blocks, lstrip_blocks, loopcontrols), its `tojson` (json.dumps: no HTML escaping, keys in
their order, non-ASCII as it is), `raise_exception` and `strftime_now` (here a fixed time, NOW,
so that the fixtures do not change from day to day).

Before rendering, a conversation goes through the two adjustments llama.cpp's chat templates
(minja's chat_template) make for templates that need them, detected the same way, by rendering
probes: an assistant turn's null content becomes "" where the template fails on null, and tool
calls' arguments (JSON text, as OpenAI clients send them) become objects where the template only
renders objects. Ward does the same in crates/models/src/template.rs; the fixture keeps the
conversation as sent, so the test checks those adjustments too.
"""
import copy
import datetime
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

import inputs

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(HERE, "fixtures", "templates-families.json")
NOW = datetime.datetime(2025, 11, 26, 8, 30, 0, tzinfo=datetime.timezone.utc)

# name: (file under models/templates, bos_token, eos_token): the tokens as the models' GGUF
# files name them.
TEMPLATES = {
    "qwen2.5-instruct": ("qwen2.5-instruct.jinja", "<|endoftext|>", "<|im_end|>"),
    "llama3.1-instruct": ("llama3.1-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.2-instruct": ("llama3.2-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "deepseek-r1-distill": ("deepseek-r1-distill.jinja", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-r1-distill-qwen-7b-gguf": ("deepseek-r1-distill-qwen-7b-gguf.jinja", "<｜begin▁of▁sentence｜>",
                                         "<｜end▁of▁sentence｜>"),
    "qwen3": ("qwen3.jinja", "<|endoftext|>", "<|im_end|>"),
}


def compile_template(source):
    """transformers' _compile_jinja_template."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def render(template, messages, tools, add_generation_prompt, bos, eos, kwargs):
    return template.render(messages=messages, tools=tools, add_generation_prompt=add_generation_prompt,
                           bos_token=bos, eos_token=eos, **kwargs)


def try_render(template, messages, bos, eos):
    try:
        return render(template, messages, None, False, bos, eos, {})
    except Exception:
        return ""


def capabilities(template, bos, eos):
    """minja's probes: does the template need non-null content, object arguments?"""
    user = {"role": "user", "content": "<User Needle>"}

    def with_content(content):
        assistant = {"role": "assistant", "content": content}
        return try_render(template, [user, assistant, user, assistant], bos, eos)
    needs_content = "<User Needle>" in with_content("") and "<User Needle>" not in with_content(None)

    args = {"argument_needle": "print('Hello, World!')"}

    def with_args(arguments):
        call = {"id": "call_1___", "type": "function", "function": {"arguments": arguments, "name": "ipython"}}
        msg = {"role": "assistant", "content": "" if needs_content else None, "tool_calls": [call]}
        out = try_render(template, [user, msg], bos, eos)
        return any(n in out for n in ("<parameter=argument_needle>", "\"argument_needle\":", "'argument_needle':"))
    # minja writes the probe's JSON text compactly (nlohmann's dump()).
    renders_str = with_args(json.dumps(args, separators=(",", ":")))
    renders_obj = with_args(args)
    return needs_content, (renders_obj and not renders_str)


def adjust(messages, needs_content, object_arguments):
    out = copy.deepcopy(messages)
    for m in out:
        if needs_content and m.get("content", "") is None:
            m["content"] = ""
        if object_arguments:
            for call in m.get("tool_calls") or []:
                f = call.get("function", {})
                if call.get("type") == "function" and isinstance(f.get("arguments"), str):
                    try:
                        f["arguments"] = json.loads(f["arguments"])
                    except ValueError:
                        pass
    return out


def main():
    sources, cases = {}, []
    for name, (file, bos, eos) in TEMPLATES.items():
        with open(os.path.join(ROOT, "models", "templates", file), encoding="utf-8") as f:
            sources[name] = f.read()
        template = compile_template(sources[name])
        needs_content, object_arguments = capabilities(template, bos, eos)
        for conv in inputs.FAMILY_CONVERSATIONS:
            messages = adjust(conv["messages"], needs_content, object_arguments)
            tools = conv.get("tools")
            for kwargs in inputs.FAMILY_KWARGS.get(name, [{}]):
                for agp in (True, False):
                    case = {"template": name, "conversation": conv["name"], "messages": conv["messages"],
                            "tools": tools, "kwargs": kwargs, "add_generation_prompt": agp,
                            "bos_token": bos, "eos_token": eos}
                    try:
                        case["rendered"] = render(template, messages, tools, agp, bos, eos, kwargs)
                    except Exception as e:
                        case["error"] = f"{type(e).__name__}: {e}"
                    cases.append(case)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"jinja2": jinja2.__version__, "now": int(NOW.timestamp()), "templates": sources, "cases": cases},
                  f, ensure_ascii=False, indent=0)
    errors = sum("error" in c for c in cases)
    print(f"{len(cases)} renderings ({errors} raised) -> {OUT}")


if __name__ == "__main__":
    main()
