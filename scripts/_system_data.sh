# Sourced by scripts/*.sh: system packages the tests and examples read.
# Fashion-MNIST comes from Debian's dataset-fashion-mnist (the original idx
# files under /usr/share/datasets/fashion-mnist); nothing is fetched at run
# time. Without root or apt the tests that need it skip and say why.
FASHION_MNIST_DIR=/usr/share/datasets/fashion-mnist
ensure_fashion_mnist() {
  [ -f "$FASHION_MNIST_DIR/train-images-idx3-ubyte.gz" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian package dataset-fashion-mnist"
    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || {
      apt-get update -q >/dev/null 2>&1 &&
        apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1
    } || echo "warning: could not install dataset-fashion-mnist; its tests skip"
  else
    echo "warning: $FASHION_MNIST_DIR missing and no root apt-get; run" \
      "'sudo apt-get install dataset-fashion-mnist' (its tests skip meanwhile)"
  fi
}
