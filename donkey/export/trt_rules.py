"""What TensorRT's ONNX parser accepts, and the project's stricter rules for its graphs.

The operator list is exactly the operators marked supported (Y) in onnx-tensorrt's
docs/operators.md at its 10.1 release (standard ONNX domain only); AffineGrid, the window
functions and DynamicQuantizeLinear are marked N there. The project rules add what
docs/architecture.md ("ONNX graph rules") forbids even where TensorRT would parse it.
"""

from __future__ import annotations

from donkey.model.errors import DonkeyError

TRT_SUPPORTED_OPS = frozenset(
    """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast
CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike
Flatten Floor GRU Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool
GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization HardSigmoid HardSwish
Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LRN LSTM LayerNormalization
LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu
Pad ParametricSoftplus Pow QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign
Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh
ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split()
)

# Parsed by TensorRT, but not allowed in our graphs (docs/architecture.md, "ONNX graph rules").
FORBIDDEN_OPS = {
    "Inverse": "matrix inverse: use the closed-form 2x2 inverse",
    "ScatterND": "in-place slice assignment: build tensors with cat/stack instead",
    "ScatterElements": "in-place index assignment: build tensors with cat/stack instead",
    "Scatter": "in-place index assignment: build tensors with cat/stack instead",
    "Loop": "a loop in the graph: vectorise over keypoints and batch",
    "If": "data-dependent control flow",
    "Scan": "a loop in the graph",
    "NonZero": "data-dependent output shape",
    "Unique": "data-dependent output shape",
    "NonMaxSuppression": "data-dependent output shape",
}

# TensorRT's Resize support; our graphs only use nearest, asymmetric, floor (PyTorch nearest).
TRT_RESIZE_COORDINATE_MODES = {
    "half_pixel",
    "pytorch_half_pixel",
    "tf_half_pixel_for_nn",
    "asymmetric",
    "align_corners",
}
TRT_RESIZE_NEAREST_MODES = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
INTENDED_RESIZE = {
    "mode": "nearest",
    "coordinate_transformation_mode": "asymmetric",
    "nearest_mode": "floor",
}
# GridSample as opset 16-19 spell it; opset 20 renamed bilinear -> linear, and a parser that
# reads the old attribute under the new opset samples nearest without complaint.
INTENDED_GRID_SAMPLE = {"mode": "bilinear", "padding_mode": "zeros", "align_corners": 1}
MAX_GRID_SAMPLE_OPSET = 19
MIN_OPSET = 16  # GridSample's first


def check_opset(opset: int) -> None:
    """An opset every export can be written and linted with: from 20 GridSample's renamed modes
    fail the lint, so such an export would fail after all its work."""
    if not MIN_OPSET <= opset <= MAX_GRID_SAMPLE_OPSET:
        raise DonkeyError(
            f"--opset must be in [{MIN_OPSET}, {MAX_GRID_SAMPLE_OPSET}] (GridSample exists from "
            f"{MIN_OPSET} and renames its modes after {MAX_GRID_SAMPLE_OPSET}), got {opset}"
        )
