"""TFLite operator codes checked as data, before the interpreter is built: builtin ops from
`ops.TFLITE_OPS` only; a custom op (code CUSTOM) is code tfport has no kernel for, and a select-TF op
(`Flex*`) runs TensorFlow's own kernel inside TFLite: both refused unless trusted."""

from __future__ import annotations

from convert.safety.ops import TFLITE_OPS, why_refused
from convert.safety.refusal import Unsafe, refuse_unless_trusted


def _flex_why(op: str) -> str:
    tf_op = op.removeprefix("Flex")
    inner = why_refused(tf_op)
    return f"is a select-TF (Flex) op running TensorFlow's {tf_op} inside TFLite, which {inner.removeprefix('is ')}"


def findings(model) -> list[Unsafe]:
    """`model`: the flatbuffer as TFLite's generated ModelT (convert.readers.tflite reads it)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.python import schema_util

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = model.operatorCodes or []
    out: list[Unsafe] = []
    for s, sub in enumerate(model.subgraphs or []):
        for i, op in enumerate(sub.operators or []):
            where = f"subgraph {s} op {i}" if s else f"op {i}"
            if not 0 <= op.opcodeIndex < len(codes):
                out.append(Unsafe(where, f"opcode #{op.opcodeIndex}", "names no operator code"))
                continue
            code = codes[op.opcodeIndex]
            name = names.get(schema_util.get_builtin_code_from_operator_code(code), "?")
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else (code.customCode or "")
            if name == "CUSTOM" or custom:
                what = custom or "CUSTOM"
                why = _flex_why(what) if what.startswith("Flex") else "is a custom op (code tfport cannot see)"
                out.append(Unsafe(where, what, why))
            elif name not in TFLITE_OPS:
                out.append(Unsafe(where, name, "is not an op the registered architectures use"))
    return out


def check_tflite(model, where: str, trust_code: bool) -> list[str]:
    return refuse_unless_trusted(where, findings(model), trust_code)
