"""The compressed header of a version-2 or -3 `.wlz` file: one zstd frame of its JSON, made with a fixed dictionary.

A model file's header (user metadata, encodings table, stored-tensor table) is a few kilobytes of JSON,
which is most of the file once weights are pruned and entropy-coded (3.3 KB of LeNet-300-100's 19.7 KB).
zstd alone halves it; zstd with a dictionary, a prefix of JSON text that the frame's matches may point
into, takes it to a fifth or less, because a small header has little to match within itself. Version 2's
dictionary is the library's own vocabulary, in the order and spelling the writer emits it: metadata
keys, entry kinds, technique names with their config fields, the zoo's model and layer names, the
training defaults; no weights, class names, sizes or statistics of any data set. Version 3's appends
skeletons of whole headers of the zoo's smallest files (``header_dictionary.py``), which also hold the
built-in data sets' class names and split sizes, constants of the library, but still nothing a file measures
or learns. Files name the dictionary by their format version, so each is frozen: a changed dictionary needs a
new version.

Header bytes of ``prune.magnitude`` (95%, global) + ``share.kmeans`` (16 clusters) files on Fashion-MNIST
(version 1: the safetensors header; version 2: the safetensors header, 4 length bytes and the frame):

=====================  ==========  ==========  ======  ===================  ============
model                  version 1   JSON        zstd    zstd + dictionary    version 2
=====================  ==========  ==========  ======  ===================  ============
LeNet-300-100          3,296       2,296       895     395                  543
LeNet-5                4,800       3,349       979     493                  633
=====================  ==========  ==========  ======  ===================  ============

What is left is mostly what no dictionary can guess: the data set's class names and preprocessing
constants, the training summary's numbers, the tensors' sizes.

Version 3 (``header_dictionary.py``): header bytes (safetensors header + 4 length bytes + frame) of the
smallest files, version 2 -> 3: ``lenet300.search-size.wlz`` (per-layer sparsity from ``wattless search``,
8 clusters, 8-bit biases; 9,343 bytes in version 2) 685 -> 348, whole file 9,006; LeNet-5 pruned 95%
(global, gradual, 2 epochs) + 16 clusters, 8-bit biases (4,527 bytes) 795 -> 306, whole file 4,038. The
tensors are the same bytes; the 136-byte safetensors header is what remains of the header's largest part.
"""

import zstandard

from wattless.artifact.compression import ZSTD_LEVEL
from wattless.artifact.format import FORMAT_VERSION, MAX_HEADER_BYTES, FormatError
from wattless.artifact.header_dictionary import SKELETONS

_DICTIONARY_TEXT = (
    # the stored-tensor and encodings tables: names of the tensors a zoo model has, and every entry kind
    '"stored":{"bias":["float32",[]],"weight":["uint8",[]],"running_mean":["float32",[]],'
    '"running_var":["float32",[]],"num_batches_tracked":["int64",[]]},'
    '{"encoding":"bitpack","bits":4,"dtype":"int32","shape":[],"zstd":false},'
    '{"dtype":"int32","encoding":"sparse","gap_bits":8,"gap_entries":0,"index":"gaps","index_bytes":0,'
    '"index_zstd":true,"nonzeros":0,"shape":[],"values_byte_planes":true,"values_zstd":true},'
    '{"dtype":"float32","encoding":"sparse","index":"bitmap","index_bytes":0,"index_zstd":false,"nonzeros":0,'
    '"shape":[],"values_byte_planes":false,"values_zstd":false},'
    '"features.0.weight","features.3.weight","classifier.1.weight","classifier.3.weight","classifier.5.weight",'
    '"fc1.weight","fc2.weight","fc3.weight","layer1.0.conv1.weight","layer1.0.bn1.weight","conv1.weight",'
    '"packed.1.weight.codebook":{"encoding":"raw"},"packed.1.weight.offset":{"encoding":"raw"},'
    '"packed.1.weight.scale":{"encoding":"raw"},"packed.1.weight.scales":{"encoding":"raw"},'
    '"packed.1.weight.row_bits":{"encoding":"raw"},'
    '"packed.1.weight.codes":{"alphabet":16,"dtype":"int32","encoding":"entropy","nonzeros":0,"shape":[],"stride":0},'
    '"1.bias":{"dtype":"float32","encoding":"zstd","shape":[]},"3.bias":{"encoding":"raw"},"5.bias":{"encoding":"raw"}'
    # the user metadata: data set, model, packed weights, recipe and training summary
    '"dataset":{"classes":[],"input_shape":[],"name":"","num_outputs":,"preprocessing":{"kind":"standardize",'
    '"mean":0.,"pixel_scale":0.00392156862745098,"std":0.},"sizes":{"test":,"train":,"val":},'
    '"task":"classification"},"imported_from":"","model":{"input_shape":[],"kwargs":{"hidden":[]},"name":"mlp",'
    '"num_outputs":10},"lenet300","lenet5","resnet18","ts_transformer","mnist","fashion-mnist","digits",'
    '"breast-cancer","diabetes","cifar10","regression","packed":{"1.weight":{"info":{"bits":4},"kind":"affine",'
    '"shape":[]},"3.weight":{"info":{"bits":4},"kind":"affine-rows","shape":[]}},"recipe":[{"config":{"bits":4,'
    '"granularity":"channel","landmarks":"uniform","layer_bits":{},"method":"midrise","symmetric":true,'
    '"channel_bits":{},"version":1},"technique":"quantize.ptq"},{"config":{"act_bits":8,"bits":4,"epochs":3,'
    '"estimator":"lsq","lr":0.0001,"version":1},"technique":"quantize.qat"},"quantize.binary","quantize.ternary",'
    '"quantize.multipoint","quantize.activations","quantize.mixed","distill.hinton","distill.fitnets",'
    '"factorize.cp","factorize.svd","factorize.tucker",{"config":{"importance":"l1","ratio":0.5,"round_to":null,'
    '"ignore":[],"version":1},"technique":"prune.structured"},{"config":{"m":4,"n":2,"version":1},'
    '"technique":"prune.nm"},{"config":{"rank":null,"ranks":null,"energy":0.9,"skip":[],"version":1},'
    '"technique":"factorize.svd"},{"config":{"finetune_epochs":2,"layer_sparsity":{},"lr":0.0005,'
    '"schedule":"oneshot","scope":"layer","sparsity":0.9,"steps":3,"version":1},"technique":"prune.magnitude"},'
    '{"config":{"clusters":16,"finetune_epochs":1,"init":"linear","lr":0.0001,"version":1},'
    '"technique":"share.kmeans"}],"seed":0,"structure":[],"task":"classification","train":{"best_epoch":10,'
    '"config":{"batch_size":128,"epochs":10,"lr":0.001,"momentum":0.9,"optimizer":"adam","patience":null,'
    '"schedule":"cosine","seed":0,"weight_decay":0.0},"epochs_run":10,"val":{"accuracy":0.9,"loss":0.2}},'
    '"wattless_version":"0.1.0"}}'
)
DICTIONARIES = {
    version: zstandard.ZstdCompressionDict(text.encode(), dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    for version, text in ((2, _DICTIONARY_TEXT), (3, _DICTIONARY_TEXT + SKELETONS))
}
"""The dictionary of each format version that compresses its header (version 1 has none)."""
DICTIONARY = DICTIONARIES[FORMAT_VERSION]


def compress_header(text: str, version: int = FORMAT_VERSION) -> bytes:
    """One zstd frame (content size and checksum, no dictionary id) of the header JSON `text`, made with the
    dictionary of format `version`."""
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=DICTIONARIES[version], write_checksum=True,
                                          write_content_size=True, write_dict_id=False)
    return compressor.compress(text.encode())


def decompress_header(frame: bytes, version: int = FORMAT_VERSION) -> str:
    """The header JSON text in `frame` (a file of format `version`), refused before decompressing when it claims
    over MAX_HEADER_BYTES."""
    try:
        size = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as error:
        raise FormatError("bad header: not a zstd frame with its size") from error
    if not 0 <= size <= MAX_HEADER_BYTES:
        raise FormatError(f"bad header: it claims {size} bytes, over the {MAX_HEADER_BYTES} limit")
    try:
        data = zstandard.ZstdDecompressor(dict_data=DICTIONARIES[version]).decompress(
            frame, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as error:
        raise FormatError(f"bad header: corrupt zstd frame ({error})") from error
    if len(data) != size:
        raise FormatError(f"bad header: decompressed to {len(data)} bytes, expected {size}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError("bad header: not UTF-8 text") from error
