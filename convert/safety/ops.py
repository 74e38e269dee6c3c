"""The ops a model file may hold, as data: what the registered architectures (convert.arch), their heads,
preprocessing and augmentation use, and nothing else.

A graph is a program: TensorFlow's own security guidance says so. These lists are what tfport lets
TF, TFLite or ONNX Runtime execute without `--trust-code`; the checkers (`graph`, `tflite`, `onnx`)
refuse anything else before the first session, interpreter or inference session is built. Ops that
are known to reach the file system or run code get their reason in `DANGEROUS` (the refusal names it);
any other op outside the lists is refused as "not an op a vision model uses".
"""

from __future__ import annotations

# --- TensorFlow (GraphDef nodes and the function library's node_defs) ------------------------------
TF_OPS: frozenset[str] = frozenset({
    # graph plumbing: inputs, constants, identities (no computation, no side effect)
    "Placeholder", "PlaceholderWithDefault", "Const", "Identity", "IdentityN", "NoOp", "StopGradient",
    "Snapshot", "EnsureShape", "CheckNumerics",
    # variables as SavedModels and tf_keras training functions hold them (reads; BN moving-average updates)
    "VarHandleOp", "ReadVariableOp", "VariableV2", "VarIsInitializedOp", "AssignVariableOp",
    "AssignAddVariableOp", "AssignSubVariableOp", "Assign", "AssignAdd", "AssignSub", "DisableCopyOnRead",
    # function calls and the control flow of learning-phase switches and Keras conds (every body is checked)
    "StatefulPartitionedCall", "PartitionedCall", "If", "StatelessIf", "While", "StatelessWhile",
    "Switch", "Merge",
    # convolutions, normalisation, activations, pooling: the architectures' layers and heads
    "Conv2D", "DepthwiseConv2dNative", "BiasAdd", "BiasAddV1", "MatMul", "BatchMatMulV2", "BatchMatMulV3",
    "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu",
    "Sigmoid", "Tanh", "Softplus", "Softsign", "Softmax", "LogSoftmax", "Erf", "AvgPool", "MaxPool",
    # elementwise math (preprocess_input's x / 127.5 - 1, Rescaling, Normalization, BN decomposed by Keras 3)
    "Add", "AddV2", "AddN", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "FloorDiv", "FloorMod", "Maximum",
    "Minimum", "Neg", "Reciprocal", "Rsqrt", "Sqrt", "Square", "SquaredDifference", "Exp", "Log", "Pow",
    "Abs", "Sign", "Round", "Rint", "Floor", "Ceil", "ClipByValue", "Cast",
    "Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd", "LogicalOr",
    "LogicalNot", "Select", "SelectV2",
    # reductions (global pooling, Keras 3 moments)
    "Mean", "Sum", "Max", "Min", "Prod", "ArgMax", "ArgMin", "All", "Any",
    # array and shape ops (no control flow): reshapes, slices, concatenations, padding
    "Reshape", "Squeeze", "ExpandDims", "Shape", "ShapeN", "Size", "Rank", "Transpose", "ConcatV2",
    "Concat", "Pack", "Unpack", "StridedSlice", "Slice", "Split", "SplitV", "Tile", "Fill", "ZerosLike",
    "OnesLike", "Range", "GatherV2", "Gather", "GatherNd", "BroadcastTo", "BroadcastArgs", "Pad", "PadV2",
    "MirrorPad", "ReverseV2", "Where", "Bitcast",
    # image preprocessing and augmentation layers (Resizing, CenterCrop, RandomFlip/Rotation/Zoom/Contrast)
    "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea", "ScaleAndTranslate",
    "CropAndResize", "ImageProjectiveTransformV3", "AdjustContrastv2", "AdjustHue", "AdjustSaturation",
    "RGBToHSV", "HSVToRGB", "Cos", "Sin", "Tan",  # RandomRotation's transform matrix
    # random numbers: dropout and augmentation in training functions, Keras 3's seed generators
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal",
    "StatelessRandomUniformV2", "StatelessRandomNormalV2", "StatelessRandomUniformIntV2",
    "StatelessTruncatedNormalV2", "StatelessRandomGetKeyCounter", "StatelessRandomGetAlg",
    "StatelessRandomGetKeyCounterAlg", "StatelessRandomUniform", "StatelessRandomNormal",
    "StatelessRandomUniformInt", "StatelessTruncatedNormal", "StatelessRandomUniformFullIntV2",
    "StatelessRandomUniformFullInt", "RngReadAndSkip", "RngSkip", "StatefulUniform", "StatefulUniformInt",
    "StatefulUniformFullInt", "StatefulStandardNormalV2", "StatefulTruncatedNormal",
})

# a SavedModel's own checkpoint functions (`__inference__traced_save/restore`, TF1's save/restore_all):
# allowed only inside what its saver_def names. The restore op (which a TF1 SavedModel's loader runs)
# reads the folder's variables; the save op (which tfport never runs) writes them.
TF_RESTORE_OPS: frozenset[str] = frozenset({"RestoreV2"})
TF_SAVE_OPS: frozenset[str] = frozenset({
    "SaveV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "StaticRegexFullMatch", "ShardedFilespec",
})

# --- TFLite (builtin operator names, schema_py_generated.BuiltinOperator) ----------------------------
TFLITE_OPS: frozenset[str] = frozenset({
    # the layers: convolutions, dense, pooling, activations (fused or not)
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "ELU", "LOGISTIC", "TANH", "HARD_SWISH",
    "SOFTMAX", "LOG_SOFTMAX",
    # elementwise math and reductions
    "ADD", "ADD_N", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "NEG", "RSQRT", "SQRT", "SQUARE",
    "SQUARED_DIFFERENCE", "EXP", "LOG", "POW", "ABS", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "CAST",
    # float16 / dynamic-range weights are dequantized into float before use
    "DEQUANTIZE", "QUANTIZE",
    # array and shape ops
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "CONCATENATION", "PACK", "UNPACK", "STRIDED_SLICE",
    "SLICE", "SPLIT", "SPLIT_V", "TILE", "BROADCAST_TO", "FILL", "SHAPE", "GATHER", "PAD", "PADV2",
    "MIRROR_PAD", "RANGE", "SELECT", "SELECT_V2", "LESS", "GREATER", "EQUAL",
    # preprocessing inside the model
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
})

# --- ONNX (node op_type in the default domain; tf2onnx's output for the sources above) ----------------
ONNX_OPS: frozenset[str] = frozenset({
    # the layers
    "Conv", "BatchNormalization", "Gemm", "MatMul", "Relu", "Clip", "LeakyRelu", "Elu", "Sigmoid", "Tanh",
    "HardSigmoid", "HardSwish", "Softmax", "LogSoftmax", "Erf", "GlobalAveragePool", "GlobalMaxPool",
    "AveragePool", "MaxPool", "Dropout",
    # elementwise math and reductions
    "Add", "Sub", "Mul", "Div", "Max", "Min", "Neg", "Reciprocal", "Sqrt", "Exp", "Log", "Pow", "Abs",
    "Floor", "Ceil", "Round", "Cast", "Equal", "Less", "Greater", "Not", "And", "Or", "Where",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
    # array and shape ops, constants
    "Constant", "ConstantOfShape", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
    "Concat", "Split", "Slice", "Gather", "Shape", "Size", "Expand", "Tile", "Pad", "Range",
    # preprocessing inside the model
    "Resize",
})
ONNX_DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})

# --- why an op outside the lists is dangerous (for the refusal's words) -------------------------------
DANGEROUS: dict[str, str] = {
    **dict.fromkeys(("WriteFile", "Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints"), "writes files"),
    **dict.fromkeys(("ReadFile", "Restore", "RestoreV2", "RestoreSlice", "LoadAndRemapMatrix",
                     "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "DecodeProtoV2"),
                    "reads files"),
    **dict.fromkeys(("MatchingFiles", "MatchingFilesDataset"), "lists files"),
    "DeleteFile": "deletes files",
    **dict.fromkeys(("PrintV2", "Print"), "prints to an output stream"),
    "ImmutableConst": "maps a file into memory",
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc"), "runs Python code"),
    **dict.fromkeys(("CreateSummaryFileWriter", "WriteSummary", "WriteScalarSummary", "WriteImageSummary",
                     "WriteHistogramSummary", "WriteAudioSummary", "WriteGraphSummary", "WriteRawProtoSummary",
                     "FlushSummaryWriter", "CreateSummaryDbWriter"), "writes event files"),
    **dict.fromkeys(("Send", "Recv", "_Send", "_Recv", "CollectiveReduce", "CollectiveReduceV2"),
                    "communicates with other processes"),
    **dict.fromkeys(("DebugIdentity", "DebugIdentityV2", "DebugNumericSummary"), "sends tensors to a debugger"),
}


def why_refused(op: str) -> str:
    """The reason an op outside the lists is refused, in words for the one-line error."""
    if op in DANGEROUS:
        return DANGEROUS[op]
    if "Dataset" in op or op.endswith(("ReaderV2", "Reader")) or op.startswith("Reader"):
        return "reads files (a tf.data or reader pipeline)"
    if op.startswith(("Write", "Save")):
        return "writes files"
    return "is not an op the registered architectures use"
