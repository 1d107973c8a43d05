"""BatchNorm whose training step is one fused kernel where the backend has one.

Keras 3's BatchNormalization trains with separate ops: a cast to float32 under a mixed
policy, the batch mean, the squared differences and their mean, a multiply and an add,
a cast back, and as many again in the gradient. Each is a pass over the activation.
keras.ops has no fused form. Under XLA the compiler fuses them. On the CPU, without XLA,
they cost ResNet9 about a third of its training step (docs/BENCHMARKS.md).

On the TensorFlow backend this layer trains with TensorFlow's own fused kernel
(`backend_kernels.fused_batch_norm_training`). Everything else is Keras's layer: its
variables, its inference path (what is exported and served), its config. So a model
built with it saves, restores and serves as one built with keras.layers.BatchNormalization.

The fused kernel differs from Keras's ops in one place: the running variance is
updated with the unbiased batch variance (n / (n - 1) times the biased one), as
PyTorch's BatchNorm2d and so cifar10-fast do. At ResNet9's smallest n (4 x 4
positions x 512 images) that is 1.0001 times.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class BatchNorm(keras.layers.BatchNormalization):

    def _fused(self, inputs, training, mask) -> bool:
        """Whether this call can take the fused kernel: training a trainable layer,
        on TensorFlow, normalising the last axis of an NHWC batch, without a mask,
        with or without its scale and centre."""
        return bool(training and self.trainable and mask is None and not self.synchronized
                    and keras.backend.backend() == "tensorflow"
                    and len(inputs.shape) == 4 and self.axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        from components.training.models.backend_kernels import fused_batch_norm_training

        # A frozen scale (or centre) is a layer without that variable; the kernel takes
        # ones (zeros) in its place and stays the one fused kernel.
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else keras.ops.ones((channels,))
        beta = self.beta if self.center else keras.ops.zeros((channels,))
        outputs, mean, variance = fused_batch_norm_training(inputs, gamma, beta,
                                                            self.epsilon)
        self.moving_mean.assign(self.moving_mean * self.momentum
                                + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + variance * (1.0 - self.momentum))
        return outputs
