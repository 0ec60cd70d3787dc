"""A SavedModel is a program: read every op of its graph before anything of it runs.

``tf.saved_model.load`` runs a SavedModel's init functions and calling its serving signature runs
its graph, which may hold ``WriteFile``, ``ReadFile``, ``PyFunc`` or any other op that touches
files, the network, processes or Python. :func:`check_saved_model` parses ``saved_model.pb``
(protobuf only, nothing executed), lists the ops of the top-level graph and of every function of
the function library (nested functions, loop bodies and branches included: they all live there)
and refuses any op outside :data:`PURE_OPS`. The checkpoint ops a SavedModel needs to save and
restore its variables (``SaveV2``, ``RestoreV2``...) are allowed only inside the functions the
saver definition points at and nothing else calls.
"""

import os

from weightkit.analysis.errors import WeightkitError

__all__ = ["CHECKPOINT_OPS", "PURE_OPS", "check_saved_model", "saved_model_ops", "unsafe_ops"]

_MAX_PB_BYTES = 1 << 30  # protobuf's own limit is 2 GiB; a real model's graph is far smaller

# Pure math, shape and control-flow ops: they compute on tensors and variables in memory only.
_PURE_OP_NAMES = """
Abs Acos Acosh Add AddN AddV2 All Any ArgMax ArgMin Asin Asinh Assert AssignAddVariableOp AssignSubVariableOp
AssignVariableOp Atan Atan2 Atanh AvgPool AvgPool3D BatchMatMul BatchMatMulV2 BatchMatMulV3 BatchToSpaceND BiasAdd
Bitcast BroadcastArgs BroadcastGradientArgs BroadcastTo Bucketize Case Cast Ceil CheckNumerics CheckNumericsV2
ClipByValue ConcatV2 Const Conv Conv1D Conv2D Conv2DBackpropInput Conv3D Conv3DBackpropInputV2 Cos Cosh Cumprod
Cumsum DepthToSpace DepthwiseConv2dNative DisableCopyOnRead Div DivNoNan Einsum Elu EnsureShape Equal Erf Erfc Exp
ExpandDims Expm1 FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars FakeQuantWithMinMaxVarsPerChannel Fill Floor
FloorDiv FloorMod FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 Gather GatherNd GatherV2 Greater GreaterEqual
Identity IdentityN If Inv InvertPermutation IsFinite IsInf IsNan L2Loss LeakyRelu Less LessEqual LinSpace Log Log1p
LogSoftmax LogicalAnd LogicalNot LogicalOr MatMul MatrixBandPart MatrixDiag MatrixDiagPartV3 MatrixDiagV3 Max
MaxPool MaxPool3D MaxPoolV2 Maximum Mean Min Minimum MirrorPad Mod Mul MulNoNan Neg NoOp NotEqual OneHot OnesLike
Pack Pad PadV2 PartitionedCall Placeholder PlaceholderWithDefault Pow PreventGradient Prod Range Rank ReadVariableOp
RealDiv Reciprocal Relu Relu6 Reshape ResizeBicubic ResizeBilinear ResizeNearestNeighbor ResourceGather Reverse
ReverseSequence ReverseV2 Rint Round Rsqrt ScatterNd Select SelectV2 Selu Shape ShapeN Sigmoid Sign Sin Sinh Size
Slice Snapshot Softmax Softplus Softsign SpaceToBatchND SpaceToDepth Split SplitV Sqrt Square SquaredDifference
Squeeze StatefulPartitionedCall StatelessCase StatelessIf StatelessWhile StopGradient StridedSlice Sub Sum Tan Tanh
TensorListElementShape TensorListFromTensor TensorListGetItem TensorListLength TensorListPopBack TensorListPushBack
TensorListReserve TensorListSetItem TensorListStack TensorScatterAdd TensorScatterUpdate Tile TopKV2 Transpose
TruncateDiv Unpack UnsortedSegmentSum VarHandleOp VarIsInitializedOp Where While Xdivy Xlog1py ZerosLike
"""
PURE_OPS = frozenset(_PURE_OP_NAMES.split())

# What a SavedModel's own saver does with its variables file, by saver function (never the serving function).
CHECKPOINT_OPS = {
    "save": frozenset(["MergeV2Checkpoints", "Pack", "SaveV2", "ShardedFilename", "StaticRegexFullMatch",
                       "StringJoin"]),
    "restore": frozenset(["RestoreV2"]),
}


def _called(node, library):
    """Names of library functions a node calls: by op name or through function-valued attributes."""
    names = {node.op} & library
    for value in node.attr.values():
        if value.HasField("func"):
            names.add(value.func.name)
        names.update(f.name for f in value.list.func)
    return names & library


def _reach(roots, calls):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(calls.get(name, ()))
    return seen


def _read(path):
    from tensorflow.core.protobuf import saved_model_pb2

    file = os.path.join(path, "saved_model.pb")
    size = os.path.getsize(file)
    if size > _MAX_PB_BYTES:
        raise WeightkitError(f"{file}: {size:,} bytes, over the {_MAX_PB_BYTES:,}-byte limit for a SavedModel graph; "
                             "export the model again (model.export(path)) or quantize its .keras file.")
    model = saved_model_pb2.SavedModel()
    try:
        with open(file, "rb") as handle:
            model.ParseFromString(handle.read())
    except Exception as error:  # protobuf's DecodeError and friends
        raise WeightkitError(f"{file}: not a readable SavedModel graph ({type(error).__name__}); export the model "
                             "again with model.export(path).") from error
    return model


def saved_model_ops(path):
    """Every op of a SavedModel's graph, with where it is.

    Parameters
    ----------
    path : str
        The SavedModel folder (holding ``saved_model.pb``).

    Returns
    -------
    list of (str, str, str or None)
        ``(op, place, saver)``: the op type; ``"graph"`` or the library function holding it;
        ``"save"`` or ``"restore"`` when that place is reached only from the saver definition's
        save (or restore) node, else None.
    """
    found = []
    for graph in _read(path).meta_graphs:
        functions = graph.graph_def.library.function
        library = {f.signature.name for f in functions}
        calls = {f.signature.name: set().union(set(), *[_called(n, library) for n in f.node_def]) for f in functions}
        saver = {graph.saver_def.save_tensor_name.split(":")[0]: "save",
                 graph.saver_def.restore_op_name.split(":")[0]: "restore"}
        saver.pop("", None)
        roots = {"save": set(), "restore": set(), None: set()}
        for node in graph.graph_def.node:
            roots[saver.get(node.name)].update(_called(node, library))
        reached = {kind: _reach(names, calls) for kind, names in roots.items() if kind}
        runnable = _reach(roots[None] | (library - set().union(*reached.values())), calls)
        owner = {}
        for kind, names in reached.items():
            for name in names - runnable:
                owner[name] = kind if owner.get(name, kind) == kind else None  # both savers: no exception
        found.extend((node.op, "graph", saver.get(node.name)) for node in graph.graph_def.node)
        for function in functions:
            name = function.signature.name
            found.extend((node.op, name, owner.get(name)) for node in function.node_def)
    return found


def unsafe_ops(path):
    """``(op, place)`` pairs of a SavedModel that are not pure math (see :data:`PURE_OPS`), in graph order."""
    unsafe, seen = [], set()
    for op, place, saver in saved_model_ops(path):
        allowed = op in PURE_OPS or (saver is not None and op in CHECKPOINT_OPS[saver])
        if not allowed and (op, place) not in seen:
            seen.add((op, place))
            unsafe.append((op, place))
    return unsafe


def check_saved_model(path, unsafe=False):
    """Refuse a SavedModel whose graph holds an op that is not pure math, before anything of it runs.

    Parameters
    ----------
    path : str
    unsafe : bool, default=False
        Skip the check (the user trusts the model).

    Raises
    ------
    WeightkitError
        Naming the first such op, where it is, how many there are, and ``--unsafe``.
    """
    if unsafe:
        return
    found = unsafe_ops(path)
    if not found:
        return
    op, place = found[0]
    names = sorted({o for o, _ in found})
    others = f" (and {', '.join(n for n in names if n != op)})" if len(names) > 1 else ""
    where = "its top-level graph" if place == "graph" else f"function {place}"
    raise WeightkitError(
        f"{path}: the SavedModel's graph runs op {op}{others} in {where}, which is not pure math (it can touch "
        "files, the network, processes or Python); a SavedModel is a program, so nothing of it was run; pass "
        "--unsafe only if you trust where it came from."
    )
