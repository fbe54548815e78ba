namespace Llava.Formats.Torch;

/// <summary>
/// The few things an allowed pickle global may stand for. The unpickler never imports or calls anything:
/// REDUCE on one of these is interpreted by kind, so a checkpoint can only ever build dicts and tensor descriptions.
/// </summary>
internal enum PickleGlobalKind
{
    /// <summary>collections.OrderedDict: REDUCE with no arguments makes an empty dict.</summary>
    OrderedDict,
    /// <summary>torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]).</summary>
    RebuildTensorV2,
    /// <summary>torch._utils._rebuild_tensor(storage, offset, size, stride) from very old checkpoints.</summary>
    RebuildTensor,
    /// <summary>torch._utils._rebuild_parameter(data, requires_grad, hooks): a Parameter is just its tensor here.</summary>
    RebuildParameter,
    /// <summary>torch._utils._rebuild_parameter_with_state(data, requires_grad, hooks, state).</summary>
    RebuildParameterWithState,
    /// <summary>torch.FloatStorage and friends: only ever used as the dtype tag inside a persistent id.</summary>
    StorageType,
}
