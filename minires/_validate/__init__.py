"""The one argument-check module: every op wrapper checks its arguments here, and each check raises a
ValueError/TypeError naming the op, the argument and the shapes or values. No forward checks anything.

core: what every op wrapper checks (a tensor, ints, pairs, a reshape); tensor_ops: dims, sizes,
broadcasting, joins, reductions; functional: losses, batch norm, pooling; inplace: in-place writes."""
from .core import int_arg, is_int, pair, reshape_shape, tensor_arg
from .tensor_ops import (any_tensor, broadcast_pair, broadcast_shape, cat_axis, correction_arg, dim_arg,
                         exact_ndim, floating_reduction, int_dim, int_sizes, keepdim_arg, matmul_shapes, nonempty,
                         nonempty_dim, norm_order, normalize_axes, permutation, selectable, sizes_arg, split_dim,
                         tensor_list)
from .functional import (REDUCTIONS, channel_arg, check_targets, class_indices, class_weight,
                         label_smoothing_arg, log_probs_target, logits_target, pool_args, reduction_arg,
                         normalized_shape_arg, same_shape, target_like)
from .inplace import (fill_value, inplace_operand, inplace_target, scalar_tensor, writable)
