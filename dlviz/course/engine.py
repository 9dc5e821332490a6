"""A reverse-mode automatic differentiation engine on scalars, small enough to read in one sitting.

Every operation creates a new ``Value`` that remembers its inputs and a ``_backward`` closure: the local chain rule,
written right beside the forward math. ``backward()`` orders the graph so that each node comes after everything that
uses it (a topological sort) and calls the closures from the loss back to the inputs. Values are Python floats
(double precision), so gradients can be checked against ``torch.autograd`` in float64 to rounding error.
"""
import math


class Value:
    """A scalar in a computational graph: ``data`` (float) and, after ``backward()``, ``grad`` = d(output)/d(self).

    Args:
        data: the value, any real number (stored as a Python float).

    Example:
        >>> from dlviz.course.engine import Value
        >>> a, b = Value(2.0), Value(-3.0)
        >>> loss = (a * b + a ** 2).tanh()
        >>> loss.backward()
        >>> round(loss.data, 4), round(a.grad, 4), round(b.grad, 4)
        (-0.964, 0.0707, 0.1413)
    """

    def __init__(self, data, _parents=(), op=""):
        self.data = float(data)
        self.grad = 0.0
        self._parents = _parents
        self._backward = lambda: None
        self.op = op                      # the operation that made this value, for printing the graph

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():                  # d(a + b) = da + db
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():                  # d(a b) = b da + a db
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, k):
        if not isinstance(k, (int, float)):
            raise TypeError(f"Value ** k takes a constant int or float exponent, got {type(k).__name__}")
        out = Value(self.data ** k, (self,), f"**{k}")

        def _backward():                  # d(a^k) = k a^(k-1) da
            self.grad += k * self.data ** (k - 1) * out.grad
        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():                  # d(e^a) = e^a da
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self):
        if self.data <= 0:
            raise ValueError(f"log of a non-positive value {self.data}")
        out = Value(math.log(self.data), (self,), "log")

        def _backward():                  # d(log a) = da / a
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():                  # d(tanh a) = (1 - tanh^2 a) da
            self.grad += (1.0 - out.data ** 2) * out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward():                  # the gradient passes where the input was positive
            self.grad += (self.data > 0) * out.grad
        out._backward = _backward
        return out

    def backward(self):
        """Fill ``grad`` of every value this one depends on with d(self)/d(value)."""
        order, seen, stack = [], set(), [(self, False)]
        while stack:                      # depth first, without recursion: a node follows all of its inputs
            v, inputs_done = stack.pop()
            if inputs_done:
                order.append(v)
            elif id(v) not in seen:
                seen.add(id(v))
                stack.append((v, True))
                stack.extend((parent, False) for parent in v._parents)
        for v in order:
            v.grad = 0.0
        self.grad = 1.0
        for v in reversed(order):         # from the output back: every user of v is done before v
            v._backward()

    # the rest is arithmetic spelled with the operations above
    def __neg__(self): return self * -1
    def __sub__(self, other): return self + (-other)
    def __truediv__(self, other): return self * (other if isinstance(other, Value) else Value(other)) ** -1
    def __radd__(self, other): return self + other
    def __rmul__(self, other): return self * other
    def __rsub__(self, other): return Value(other) - self
    def __rtruediv__(self, other): return Value(other) / self
    def __repr__(self): return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"
