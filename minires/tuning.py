"""Every machine-tuning constant of the fast paths, each with the measurement behind it.

The reference implementations use none of these. Kernels read them as `tuning.NAME` at call time,
so a test or a benchmark can change one (monkeypatch) and every kernel sees it. Figures were
measured on the project's 2-core CPU machine (1 MB L2 per core) unless stated.
"""
from __future__ import annotations

# --- threads (minires.parallel) ---------------------------------------------------------------

# Parts smaller than this many array elements are not worth a thread hand-off (tens of microseconds).
MIN_PART_ELEMENTS = 2**15

# A block of GEMM rows is worth a thread from about MIN_PART_ELEMENTS * MACS_PER_ELEMENT
# multiply-adds: a multiply-add costs ~1/32 of a copied element's memory traffic there.
MACS_PER_ELEMENT = 32

# --- CPU convolution (minires.kernels.cpu.conv) ---------------------------------------------------

# Bytes of im2col columns built at once. NOTE: the GEMMs here are bound by memory bandwidth, not
# FLOPs: columns for a few images stay in cache between the im2col copy and the GEMM reading them,
# where whole-batch columns (hundreds of MB) make a round trip through RAM (and page-fault on every
# fresh allocation). Measured ~1.5x faster for ResNet-sized layers. 2 MB = the two cores' L2:
# ~15% faster than 4 MB over ResNet-20's convs.
CPU_CHUNK_BYTES = 2 * 2**20

# NOTE: each chunk's GEMM also packs the whole weight matrix (KH*KW*C, O) and, for dw, writes and
# adds a (KH*KW*C, O) partial product: a cost per chunk, not per row. For wide layers (256->256 at
# 8x8, 2 MB = 3 images = 192 rows) that outweighs the columns, so chunks hold at least this many
# rows per output channel: 256->256 at 8x8 measured 13% faster forward, 21% backward; 128->128 at
# 16x16 unchanged; 8 rows per channel was slower than 4 there.
ROWS_PER_OUT_CHANNEL = 4

# Row-split columns (see minires.kernels.cpu.conv): for narrow inputs (KW*C values per kernel row,
# e.g. 48 for 3x3 over 16 channels) the im2col copy is bound by its many short runs, not by bytes.
# Measured ~20% faster for 16-channel 3x3 layers and slower from 32 channels on (the GEMMs get too
# shallow relative to the copy saved). For dw the GEMMs reduce over the long pixel axis whatever
# the column width, so row-split pays up to wider rows: 32-channel 3x3 dw measured ~7% faster,
# 64-channel ~10% slower.
ROW_SPLIT_MAX_K = 48
ROW_SPLIT_DW_MAX_K = 96

# --- CUDA kernels (minires.cuda) -------------------------------------------------------------------

BLOCK = 256           # threads per block
MAX_BLOCKS = 65535    # grid-stride loops cover the rest

# Batch-norm statistics threads: enough to fill a large GPU (132 SMs x 2048 resident threads ~
# 2**18), each summing at least STAT_MIN_VALUES values; partials are then merged MERGE_FANIN at a time.
STAT_THREADS = 2**18
STAT_MIN_VALUES = 32
MERGE_FANIN = 32
