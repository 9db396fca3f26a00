"""Re-express an ONNX graph's transposed convolutions as sub-pixel convolutions.

A transposed convolution of stride s whose output is exactly s times its input (s x s output
phases, each a plain convolution of the input) equals one convolution with s^2 times the output
channels followed by DepthToSpace (Shi et al., "Real-Time Single Image and Video
Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016; the
equivalence: Shi et al., "Is the deconvolution layer the same as a convolutional layer?",
arXiv:1609.07009). Same weights, same function, the float sums in another order.

Why: onnxruntime's CPU ConvTranspose multiplies into a column buffer of out x k^2 x input
positions and scatters it (col2im). For shae-v9's synthesis of a 1-megapixel image that buffer
is 426 MB at the 64-channel half-resolution layer, and the pages it touches cost the first run of
every process about 0.1 s; its Conv kernels need no such buffer. A 5x5 stride-2 layer becomes a
3x3 convolution (the phases' 9, 6, 6 and 4 taps padded to 9, so 44 % more multiply-adds), yet
it runs as fast and a whole decode needs 45 % less memory (docs/bench/speed-detail.md).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def subpixel_kernel(weight: np.ndarray, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """A ConvTranspose weight in,out,k,k (stride s, symmetric padding p, output s times the
    input) -> (Conv weight out*s*s,in,K,K, padding before, padding after) for the equivalent
    convolution, output channel c*s*s + a*s + b being phase (a, b) of channel c (DepthToSpace,
    mode CRD).

    Output pixel s*m + a of the transposed convolution gathers input m + e through kernel tap
    a + p - s*e, for every e that lands inside the kernel; the convolution reads the offsets e
    of all phases, zero where a phase has no tap."""
    in_channels, out_channels, k, k2 = weight.shape
    if k != k2:
        raise ValueError(f"square kernels only, got {k}x{k2}")
    offsets = sorted({e for a in range(stride) for e in range(-k, k + 1) if 0 <= a + pad - stride * e < k})
    first, last = offsets[0], offsets[-1]
    if first > 0 or last < 0:
        raise ValueError("the phases do not cover the input position itself; padding would be negative")
    size = last - first + 1
    kernel = np.zeros((out_channels, stride, stride, in_channels, size, size), dtype=weight.dtype)
    for a in range(stride):
        for b in range(stride):
            for j in range(size):
                for i in range(size):
                    tap_y, tap_x = a + pad - stride * (first + j), b + pad - stride * (first + i)
                    if 0 <= tap_y < k and 0 <= tap_x < k:
                        kernel[:, a, b, :, j, i] = weight[:, :, tap_y, tap_x].T
    return kernel.reshape(out_channels * stride * stride, in_channels, size, size), -first, last


def _plan(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> tuple[np.ndarray, int, int, int]:
    """(Conv weight, padding before, after, stride) for a ConvTranspose node, or ValueError."""
    attrs = _attributes(node)
    strides = list(attrs.get("strides", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    output_padding = list(attrs.get("output_padding", [0, 0]))
    if node.input[1] not in initializers:
        raise ValueError(f"{node.name}: the weight is not a constant")
    weight = numpy_helper.to_array(initializers[node.input[1]])  # in,out,k,k
    stride, pad, k = strides[0], pads[0], weight.shape[2]
    plain = (attrs.get("group", 1) == 1 and list(attrs.get("dilations", [1, 1])) == [1, 1]
             and len(strides) == 2 and strides[1] == stride and len(set(pads)) == 1
             and len(set(output_padding)) == 1 and "output_shape" not in attrs
             and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))
    if not plain or k + output_padding[0] - 2 * pad != stride:
        raise ValueError(f"{node.name}: only plain 2D transposed convolutions whose output is "
                         f"stride x the input are rewritten, got {attrs}")
    kernel, before, after = subpixel_kernel(weight, stride, pad)
    return kernel, before, after, stride


def rewrite_transposed_convolutions(model: onnx.ModelProto) -> int:
    """Replace, in place, every ConvTranspose of `model` whose output is stride times its input
    (2D, no groups or dilation, square stride and kernel, constant weights) by Conv + DepthToSpace;
    returns how many. Any other ConvTranspose is a ValueError before anything changes, so a
    graph never half-converts."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    old_nodes = list(graph.node)
    plans = [_plan(node, initializers) if node.op_type == "ConvTranspose" else None for node in old_nodes]
    nodes: list[onnx.NodeProto] = []
    for node, plan in zip(old_nodes, plans):
        if plan is None:
            nodes.append(node)
            continue
        kernel, before, after, stride = plan
        weight_name = f"{node.input[1]}.subpixel"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(kernel), weight_name))
        inputs = [node.input[0], weight_name]
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(initializers[node.input[2]])
            bias_name = f"{node.input[2]}.subpixel"
            graph.initializer.append(numpy_helper.from_array(np.repeat(bias, stride * stride), bias_name))
            inputs.append(bias_name)
        phases = f"{node.output[0]}.phases"
        size = kernel.shape[2]
        nodes.append(helper.make_node("Conv", inputs, [phases], name=f"{node.name}.subpixel",
                                      kernel_shape=[size, size], pads=[before, before, after, after]))
        nodes.append(helper.make_node("DepthToSpace", [phases], list(node.output), name=f"{node.name}.shuffle",
                                      blocksize=stride, mode="CRD"))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return sum(plan is not None for plan in plans)
