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


# ----------------------------------------------------------------------------------------------
# The layout that runs fastest in onnxruntime (docs/bench/speed-detail.md, 0.11.0)

def _node_attributes(node: onnx.NodeProto, name: str, default: object) -> object:
    return _attributes(node).get(name, default)


class _Graph:
    """Lookups over a graph whose nodes and initializers the rewrites below change."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.initializers = {init.name: init for init in self.graph.initializer}
        self.producer = {out: node for node in self.graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def array(self, name: str) -> np.ndarray | None:
        init = self.initializers.get(name)
        return None if init is None else numpy_helper.to_array(init)

    def add(self, name: str, array: np.ndarray) -> str:
        init = numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.graph.initializer.append(init)
        self.initializers[name] = init
        return name


def _subpixel_pairs(g: _Graph) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(Conv, DepthToSpace) pairs that rewrite_transposed_convolutions made: a DepthToSpace in CRD
    mode right after a convolution with constant weights that nothing else reads."""
    pairs = []
    for node in g.graph.node:
        if node.op_type != "DepthToSpace" or _node_attributes(node, "mode", b"DCR") not in (b"CRD", "CRD"):
            continue
        conv = g.producer.get(node.input[0])
        if conv is not None and conv.op_type == "Conv" and conv.input[1] in g.initializers \
                and len(g.consumers.get(conv.output[0], [])) == 1 and _node_attributes(conv, "group", 1) == 1:
            pairs.append((conv, node))
    return pairs


def _trimmed(taps: np.ndarray, pads: list[int]) -> tuple[np.ndarray, list[int]]:
    """A kernel out,in,K,K less its all-zero outer rows and columns, with the padding that keeps
    every output where it was; as it is where that padding would be negative."""
    size = taps.shape[2]
    rows, cols = np.flatnonzero(np.any(taps != 0, axis=(0, 1, 3))), np.flatnonzero(np.any(taps != 0, axis=(0, 1, 2)))
    if not rows.size:
        return taps, pads
    r0, r1, c0, c1 = rows[0], rows[-1], cols[0], cols[-1]
    trimmed_pads = [int(pads[0] - r0), int(pads[1] - c0), int(pads[2] - (size - 1 - r1)), int(pads[3] - (size - 1 - c1))]
    if min(trimmed_pads) < 0:
        return taps, pads
    return taps[:, :, r0:r1 + 1, c0:c1 + 1], trimmed_pads


def _phase_nodes(g: _Graph, conv: onnx.NodeProto, stride: int, prefix: str,
                 sources: dict[str, str]) -> tuple[list[onnx.NodeProto], list[str]]:
    """A sub-pixel convolution (output channel c * s^2 + phase, CRD) as one convolution per phase
    with only the taps that phase reads (a 5x5 stride-2 layer: 9, 6, 6 and 4 of the 9, so 31 %
    fewer multiply-adds than with the zeros); returns the nodes and their outputs, phase by phase."""
    weight = g.array(conv.input[1])
    bias = g.array(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
    pads = list(_node_attributes(conv, "pads", [0, 0, 0, 0]))
    nodes, outputs = [], []
    for phase in range(stride * stride):
        taps, phase_pads = _trimmed(weight[phase::stride * stride], pads)
        inputs = [conv.input[0], g.add(f"{conv.input[1]}.phase{phase}", taps)]
        sources[inputs[1]] = conv.input[1]
        if bias is not None:
            inputs.append(g.add(f"{conv.input[2]}.phase{phase}", bias[phase::stride * stride]))
            sources[inputs[2]] = conv.input[2]
        outputs.append(f"{prefix}.phase{phase}")
        nodes.append(helper.make_node("Conv", inputs, [outputs[-1]], name=f"{conv.name}.phase{phase}",
                                      kernel_shape=list(taps.shape[2:]), pads=phase_pads))
    return nodes, outputs


def _dcr_convolution(g: _Graph, conv: onnx.NodeProto, stride: int, sources: dict[str, str]) -> onnx.NodeProto:
    """The convolution with its output channels reordered from CRD (c * s^2 + phase) to DCR
    (phase * C + c): onnxruntime's DepthToSpace runs DCR mode about twice as fast."""
    inputs = list(conv.input)
    for index in (1, 2):
        if len(inputs) > index and inputs[index]:
            array = g.array(inputs[index])
            channels = array.shape[0] // (stride * stride)
            order = [c * stride * stride + phase for phase in range(stride * stride) for c in range(channels)]
            inputs[index] = g.add(f"{conv.input[index]}.dcr", array[order])
            sources[inputs[index]] = conv.input[index]
    node = onnx.NodeProto()
    node.CopyFrom(conv)
    del node.input[:]
    node.input.extend(inputs)
    return node


def _gdn_between(g: _Graph, first: onnx.NodeProto, last_conv: onnx.NodeProto) -> dict[str, onnx.NodeProto] | None:
    """The nodes of a GDN (imgcodec.train.transforms.GDN as exported: x * sqrt(Conv1x1(x * x,
    reshape(|gamma|), |beta| + eps))) from the output of DepthToSpace `first` to the input of
    `last_conv`, or None where the graph is not that."""
    x = first.output[0]
    outer = g.producer.get(last_conv.input[0])
    if outer is None or outer.op_type != "Mul" or x not in outer.input:
        return None
    root = g.producer.get(outer.input[1] if outer.input[0] == x else outer.input[0])
    if root is None or root.op_type != "Sqrt":
        return None
    conv = g.producer.get(root.input[0])
    if conv is None or conv.op_type != "Conv" or len(conv.input) < 3 or _node_attributes(conv, "group", 1) != 1:
        return None
    square = g.producer.get(conv.input[0])
    reshape = g.producer.get(conv.input[1])
    if square is None or square.op_type != "Mul" or list(square.input) != [x, x] \
            or reshape is None or reshape.op_type != "Reshape":
        return None
    readers = g.consumers.get(x, [])
    if any(n is not square and n is not outer and n.op_type != "Shape" for n in readers):
        return None
    return {"outer": outer, "root": root, "conv": conv, "square": square, "reshape": reshape}


def _folded_kernel(weight: np.ndarray, channels: int) -> np.ndarray:
    """A 3x3 sub-pixel convolution of stride 2 (weight O*4,C,3,3, output channel o * 4 + phase)
    that reads the full-resolution output of an earlier stride-2 layer, re-expressed to read that
    layer's phases instead (phase-major, 4C channels at its input's resolution) and to give
    16 output phases in DCR order (16 O channels): output pixel 4i + A of the folded pair is
    pixel 2u + a of the last layer, u = 2i + A // 2, which reads rows u - 1 .. u + 1 of the
    full-resolution map, i.e. phase r % 2 of row i + r // 2 for r = A // 2 - 1 .. A // 2 + 1."""
    out = weight.shape[0] // 4
    folded = np.zeros((16 * out, 4 * channels, 3, 3), dtype=weight.dtype)
    for big_a in range(4):
        for big_b in range(4):
            rows = slice((big_a * 4 + big_b) * out, (big_a * 4 + big_b + 1) * out)
            source = weight[(big_a % 2) * 2 + big_b % 2::4]  # O,C,3,3
            for du in range(3):
                ry = big_a // 2 + du - 1
                for dv in range(3):
                    rx = big_b // 2 + dv - 1
                    phase = (ry % 2) * 2 + rx % 2
                    folded[rows, phase * channels:(phase + 1) * channels, ry // 2 + 1, rx // 2 + 1] = source[:, :, du, dv]
    return folded


def faster_layout(model: onnx.ModelProto) -> dict[str, str]:
    """Rewrite, in place, the sub-pixel convolutions of rewrite_transposed_convolutions into the
    form onnxruntime runs fastest, computing the same function from the same weight values:

    - stride-2 layers become one convolution per output phase without the zero taps, joined in
      phase-major order, and DepthToSpace runs in DCR mode (twice as fast as CRD there);
      other strides (the residual stage's 16x16 blocks) keep one convolution, reordered for DCR;
    - the last layer, when it makes 4 channels or fewer from a GDN of the previous stride-2 layer
      (shae-v9's RGB layer), reads that layer's phases directly: the GDN (per pixel) and the
      last layer run phase by phase, each phase's part of the last layer a 2x2 convolution
      giving all 16 phases of the image, and the parts are summed and shuffled once. The
      64-channel full-resolution map, the largest tensor of the synthesis, is never laid out
      or shuffled (a decode of 1 megapixel peaks a quarter lower, docs/bench/speed-detail.md).

    Returns {new initializer: the initializer whose values it holds} (sliced or reordered
    copies, and zeros), so that stored weights can be moved over exactly
    (scripts/subpixel_decoder.py)."""
    g = _Graph(model)
    sources: dict[str, str] = {}
    pairs = _subpixel_pairs(g)
    replaced: dict[int, list[onnx.NodeProto]] = {}  # id(node) -> the nodes that take its place
    removed: set[int] = set()
    rewired: dict[int, dict[str, str]] = {}  # id(node) -> {old input: new input}
    constants: list[onnx.NodeProto] = []
    for conv_b, d2s_b in pairs:
        weight_b = g.array(conv_b.input[1])
        stride_b = int(_node_attributes(d2s_b, "blocksize", 0))
        if stride_b != 2 or weight_b.shape[0] > 16 or weight_b.shape[2:] != (3, 3) \
                or list(_node_attributes(conv_b, "pads", [])) != [1, 1, 1, 1]:
            continue
        for conv_a, d2s_a in pairs:
            gdn = _gdn_between(g, d2s_a, conv_b) if int(_node_attributes(d2s_a, "blocksize", 0)) == 2 else None
            if gdn is None or id(conv_a) in removed:
                continue
            channels = g.array(conv_a.input[1]).shape[0] // 4
            # the GDN's weight: its shape a Constant node (part of the graph, not a weight), no
            # longer read off the full-resolution map
            shape = f"{gdn['reshape'].name}.shape"
            constants.append(_constant(shape, np.array([channels, channels, 1, 1], dtype=np.int64)))
            rewired[id(gdn["reshape"])] = {gdn["reshape"].input[1]: shape}
            gdn_weight, gdn_bias = gdn["conv"].input[1], gdn["conv"].input[2]
            folded = _folded_kernel(weight_b, channels)  # 16 O,4 C,3,3
            bias = g.array(conv_b.input[2]) if len(conv_b.input) > 2 and conv_b.input[2] else None
            phase_convs, phase_outputs = _phase_nodes(g, conv_a, 2, d2s_a.output[0], sources)
            chain, partial = [], []
            for phase, x in enumerate(phase_outputs):  # phase by phase
                chain.append(phase_convs[phase])
                name = f"{d2s_a.output[0]}.phase{phase}"
                taps, pads = _trimmed(folded[:, phase * channels:(phase + 1) * channels], [1, 1, 1, 1])
                inputs = [f"{name}.gdn", g.add(f"{conv_b.input[1]}.folded{phase}", taps)]
                sources[inputs[1]] = conv_b.input[1]
                if phase == 0 and bias is not None:
                    order = [(big_a % 2) * 2 + big_b % 2 + 4 * o for big_a in range(4) for big_b in range(4)
                             for o in range(len(bias) // 4)]
                    inputs.append(g.add(f"{conv_b.input[2]}.folded", bias[order]))
                    sources[inputs[2]] = conv_b.input[2]
                partial.append(f"{name}.out")
                chain += [
                    helper.make_node("Mul", [x, x], [f"{name}.square"], name=f"{name}.square"),
                    helper.make_node("Conv", [f"{name}.square", gdn_weight, gdn_bias], [f"{name}.norm"],
                                     name=f"{name}.norm", kernel_shape=[1, 1]),
                    helper.make_node("Sqrt", [f"{name}.norm"], [f"{name}.root"], name=f"{name}.root"),
                    helper.make_node("Mul", [x, f"{name}.root"], [f"{name}.gdn"], name=f"{name}.gdn"),
                    helper.make_node("Conv", inputs, [partial[-1]], name=f"{name}.folded",
                                     kernel_shape=list(taps.shape[2:]), pads=pads)]
            chain.append(helper.make_node("Sum", partial, list(conv_b.output), name=f"{conv_b.name}.folded"))
            replaced[id(conv_b)] = chain  # where every input of the chain exists
            removed.update(id(n) for n in (conv_a, d2s_a, gdn["square"], gdn["conv"], gdn["root"], gdn["outer"]))
            replaced[id(d2s_b)] = [helper.make_node("DepthToSpace", list(d2s_b.input), list(d2s_b.output),
                                                    name=f"{d2s_b.name}.folded", blocksize=4, mode="DCR")]
            break
    for conv, d2s in pairs:
        if id(conv) in replaced or id(conv) in removed or id(d2s) in replaced:
            continue
        stride = int(_node_attributes(d2s, "blocksize", 0))
        if stride == 2:  # the phases joined phase-major, the order of DCR mode
            nodes, outputs = _phase_nodes(g, conv, 2, d2s.input[0], sources)
            replaced[id(conv)] = nodes + [helper.make_node("Concat", outputs, [d2s.input[0]], name=f"{conv.name}.phases",
                                                           axis=1)]
        else:
            replaced[id(conv)] = [_dcr_convolution(g, conv, stride, sources)]
        replaced[id(d2s)] = [helper.make_node("DepthToSpace", list(d2s.input), list(d2s.output), name=d2s.name,
                                              blocksize=stride, mode="DCR")]
    nodes = list(constants)
    for node in list(g.graph.node):
        if id(node) in removed:
            continue
        if id(node) in replaced:
            nodes.extend(replaced[id(node)])
            continue
        if id(node) in rewired:
            mapping = rewired[id(node)]
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            for i, name in enumerate(copy.input):
                copy.input[i] = mapping.get(name, name)
            node = copy
        nodes.append(node)
    _prune(g.graph, nodes)
    return sources


def _constant(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(array, name))


def _prune(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """Set the graph's nodes to `nodes` less those whose outputs nothing reads, and drop the
    initializers no node reads."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {name for node in nodes for name in node.input} | outputs
        kept = [node for node in nodes if any(out in read for out in node.output)]
        if len(kept) == len(nodes):
            break
        nodes = kept
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept_inits = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
