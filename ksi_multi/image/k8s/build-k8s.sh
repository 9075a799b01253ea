#!/usr/bin/env bash
# build-k8s.sh - build the Kubernetes node/control-plane binaries that
# ksi-multi needs, from Go modules only (no container registry, no git).
#
#   ./build-k8s.sh [all|k8s|coredns|etcd|pause ...]
#
# Produces linux/amd64 binaries in $OUT (default: <this dir>/out/bin):
#   kubeadm kubelet kube-apiserver kube-controller-manager kube-scheduler
#   kube-proxy   (k8s.io/kubernetes, built through the k8swrap/ module)
#   coredns      (go install github.com/coredns/coredns@<kubeadm's version>)
#   etcd         (go.etcd.io/etcd/server/v3 through etcdwrap/; etcdctl with
#                WITH_ETCDCTL=1)
#   pause        (static C, pause/pause.c)
# plus $OUT/../versions.env and $OUT/../SHA256SUMS.
#
# Environment knobs (defaults in brackets):
#   K8S_SERIES         [1.32]
#   K8S_VERSION        [auto]  auto = the version pinned in k8swrap/go.mod, or
#                      (first run / REGEN=1) the newest $K8S_SERIES patch whose
#                      complete module closure the proxy actually serves
#   COREDNS_VERSION    [from kubeadm constants, e.g. v1.11.3]
#   ETCD_VERSION       [from kubeadm constants, e.g. v3.5.24]
#   KUBELET_CGO        [0]  1 = build kubelet with CGO (dynamically linked,
#                           like upstream; costs a second full compile)
#   KUBE_GIT_COMMIT    []   stamped into gitCommit (no git access here)
#   SOURCE_DATE_EPOCH  [k8s module publish time] -> buildDate
#   KSI_GO_CACHE       [/var/cache/ksi-multi-go/v1]  GOCACHE + GOMODCACHE
#   OUT                [<this dir>/out/bin]
#   GO                 [/usr/local/go/bin/go]
#   GOMAXPROCS [2], NICE [10]
#   GONOSUMDB=k8s.io   accept k8s.io versions whose checksum-db lookup the
#                      proxy cannot serve (404 on /sumdb/...); OFF by default
#   REGEN=1            regenerate k8swrap/ and etcdwrap/ go.mod+go.sum even
#                      if they already match the requested versions
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

K8S_SERIES=${K8S_SERIES:-1.32}
K8S_VERSION=${K8S_VERSION:-auto}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
KSI_GO_CACHE=${KSI_GO_CACHE:-/var/cache/ksi-multi-go/v1}
OUT=${OUT:-$HERE/out/bin}
LOGDIR=$OUT/../logs
NICE=${NICE:-10}
KUBELET_CGO=${KUBELET_CGO:-0}
KUBE_GIT_COMMIT=${KUBE_GIT_COMMIT:-}
REGEN=${REGEN:-0}

export GOMAXPROCS=${GOMAXPROCS:-2}
export GOCACHE=$KSI_GO_CACHE/gocache
export GOMODCACHE=$KSI_GO_CACHE/gomodcache
export GOPATH=$KSI_GO_CACHE/gopath          # keep ~/go untouched
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}    # never auto-download a toolchain
export GOFLAGS="-buildvcs=false -modcacherw" # modcacherw: cache is rm -rf-able
export GOOS=linux GOARCH=amd64 GOAMD64=v1
unset GOBIN GOWORK
export GOWORK=off

K8S_STATIC=(kubeadm kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
BUILD_TAGS=selinux,notest   # same tags as upstream hack/lib/golang.sh

log() { printf '[build-k8s %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
gocmd() { nice -n "$NICE" "$GO" "$@"; }
timed() { # timed <label> cmd...
  local label=$1 t0=$SECONDS; shift
  "$@"
  log "$label done in $((SECONDS - t0))s"
  echo "$label $((SECONDS - t0))s" >>"$OUT/../timings.txt"
}

# ---------------------------------------------------------------- helpers
# replace_targets <go.mod> <regex>: module paths whose replace target matches
replace_targets() {
  awk -v re="$2" '
    /^replace[ \t]*\(/ {blk=1; next}
    blk && /^\)/       {blk=0; next}
    { line=$0 }
    /^replace[ \t]+[^(]/ { sub(/^replace[ \t]+/, "", line); one=1 }
    blk || one {
      n = split(line, f, /[ \t]+/); for (i = 1; i <= n; i++) if (f[i] == "=>") break
      j = 1; while (j <= n && f[j] == "") j++
      if (i < n && f[i+1] ~ re) print f[j]
      one=0
    }' "$1" | sort -u
}

# required_version <go.mod> <module>: version <go.mod> requires <module> at
required_version() {
  awk -v m="$2" '
    /^require[ \t]*\(/ {blk=1; next}
    blk && /^\)/       {blk=0; next}
    blk && $1 == m     {print $2; exit}
    /^require[ \t]+[^(]/ && $2 == m {print $3; exit}' "$1"
}

# godebug_lines <go.mod>: "key=value" for each godebug directive
godebug_lines() {
  awk '
    /^godebug[ \t]*\(/ {blk=1; next}
    blk && /^\)/       {blk=0; next}
    blk { gsub(/^[ \t]+|[ \t]+$/, ""); if ($0 != "" && $0 !~ /^\/\//) print; next }
    /^godebug[ \t]+/   { sub(/^godebug[ \t]+/, ""); print }' "$1"
}

# gen_wrapper <dir> <module name> <dep> <dep version> <sibling version>
#             <replace-target regex> <tool pkg>...
# Writes <dir>/go.mod + go.sum: requires <dep>@<version>, pins every module
# that <dep>'s own go.mod replaces with a local path (regex) to
# <sibling version> ("required" = the version <dep>'s go.mod requires it at;
# etcd: client/v2 is v2.305.x while the rest is v3.5.x), copies <dep>'s godebug settings (they only take effect in
# the main module) and lists the binaries as `tool` directives (keeps
# `go mod tidy` from dropping the requirement; needs go >= 1.24 in go.mod).
gen_wrapper() {
  local dir=$1 name=$2 dep=$3 ver=$4 sibver=$5 re=$6; shift 6
  local stamp="// generated by build-k8s.sh for $dep@$ver"
  if [[ $REGEN != 1 && -f $dir/go.sum ]] && grep -qxF "$stamp" "$dir/go.mod"; then
    log "$dir/go.mod is current ($dep@$ver)"; return 0
  fi
  log "generating $dir/go.mod for $dep@$ver"
  local depmod; depmod=$(cd / && gocmd list -m -f '{{.GoMod}}' "$dep@$ver") || return 1
  [[ -f $depmod ]] || { log "cannot fetch go.mod of $dep@$ver"; return 1; }
  mkdir -p "$dir"; rm -f "$dir/go.mod" "$dir/go.sum"
  printf '%s\n// DO NOT EDIT: run REGEN=1 ./build-k8s.sh\nmodule %s\n\ngo 1.24.0\n' \
    "$stamp" "$name" >"$dir/go.mod"
  local args=(-require="$dep@$ver") m n=0
  local mv
  for m in $(replace_targets "$depmod" "$re"); do
    mv=$sibver
    [[ $sibver == required ]] && mv=$(required_version "$depmod" "$m")
    [[ -n $mv && $mv != v0.0.0 ]] || { log "no usable version for $m"; return 1; }
    args+=(-replace="$m=$m@$mv"); n=$((n + 1))
  done
  log "  $n replace directives (siblings -> $sibver)"
  while read -r m; do [[ -n $m ]] && args+=(-godebug="$m"); done < <(godebug_lines "$depmod")
  for m in "$@"; do args+=(-tool="$m"); done
  local tlog="$LOGDIR/tidy-${dir##*/}-$ver.log"
  (cd "$dir" && gocmd mod edit "${args[@]}") || return 1
  if ! (cd "$dir" && gocmd mod tidy) >"$tlog" 2>&1; then
    # the proxy answers 403 "This module version is not available" for some
    # staging module versions: report which ones
    log "  go mod tidy failed for $dep@$ver; unavailable on the proxy:"
    grep -oE '[a-zA-Z0-9./_-]+@v[^:]+: reading [^ ]+: [0-9]+ [A-Za-z ]+' "$tlog" |
      sed -E 's/: reading .*: / -> /' | sort -u | sed 's/^/    /' >&2 || tail -5 "$tlog" >&2
    rm -f "$dir/go.sum"
    return 1
  fi
}

k8s_src() { (cd "$HERE/k8swrap" && gocmd list -m -f '{{.Dir}}' k8s.io/kubernetes); }
# kubeadm_const <NAME>: string constant from cmd/kubeadm/app/constants
kubeadm_const() {
  sed -nE "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"([^\"]+)\".*/\1/p" \
    "$(k8s_src)/cmd/kubeadm/app/constants/constants.go" | head -1
}

# ---------------------------------------------------------------- steps
gen_k8s_wrapper() { # gen_k8s_wrapper vX.Y.Z
  local v=$1
  gen_wrapper "$HERE/k8swrap" ksi-multi/k8swrap k8s.io/kubernetes "$v" \
    "v0.${v#v1.}" '^\./staging/' \
    $(printf 'k8s.io/kubernetes/cmd/%s ' "${K8S_STATIC[@]}" kubelet)
}

# drop the (large) extracted sources of a rejected candidate from GOMODCACHE
prune_k8s_version() {
  local v=$1 sv="v0.${1#v1.}"
  rm -rf "$GOMODCACHE/k8s.io/kubernetes@$v" "$GOMODCACHE"/k8s.io/*@"$sv" \
    "$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$v.zip" \
    "$GOMODCACHE"/cache/download/k8s.io/*/@v/"$sv".zip
}

prepare_k8s() {
  local cur v n latest failed=()
  cur=$(sed -nE 's#^// generated by build-k8s.sh for k8s.io/kubernetes@(v[0-9.]+)$#\1#p' \
    "$HERE/k8swrap/go.mod" 2>/dev/null || true)
  if [[ $K8S_VERSION == auto ]]; then
    if [[ $REGEN != 1 && $cur == v$K8S_SERIES.* && -f $HERE/k8swrap/go.sum ]]; then
      K8S_VERSION=$cur # pinned by the committed k8swrap/go.mod
    else
      # newest v$K8S_SERIES.N whose whole module closure the proxy serves
      latest=$(cd / && gocmd list -m -f '{{.Version}}' "k8s.io/kubernetes@v$K8S_SERIES")
      for ((n = ${latest##*.}; n >= 0; n--)); do
        v=v$K8S_SERIES.$n
        if ! (cd / && gocmd list -m "k8s.io/kubernetes@$v") >/dev/null 2>&1; then
          log "$v: k8s.io/kubernetes not available on the proxy"; continue
        fi
        if REGEN=1 gen_k8s_wrapper "$v"; then K8S_VERSION=$v; break; fi
        log "$v: incomplete on the proxy, trying the previous patch"
        failed+=("$v")
      done
      [[ $K8S_VERSION != auto ]] || die "no v$K8S_SERIES.x buildable from the proxy"
      for v in "${failed[@]}"; do prune_k8s_version "$v"; done
    fi
    log "selected k8s.io/kubernetes $K8S_VERSION"
  fi
  gen_k8s_wrapper "$K8S_VERSION" || die "cannot resolve k8s.io/kubernetes@$K8S_VERSION"
  (cd "$HERE/k8swrap" && gocmd mod download k8s.io/kubernetes)
}

build_k8s() {
  local maj min date
  maj=${K8S_VERSION#v}; maj=${maj%%.*}
  min=${K8S_VERSION#v*.}; min=${min%%.*}
  if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
    date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  else # publish time of the module on the proxy: reproducible
    date=$(cd "$HERE/k8swrap" && gocmd list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
  fi
  local ld="-s -w" p kv
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for kv in gitVersion="$K8S_VERSION" gitMajor="$maj" gitMinor="$min" \
      gitCommit="$KUBE_GIT_COMMIT" gitTreeState=clean buildDate="$date"; do
      ld+=" -X $p.$kv"
    done
  done
  local pkgs=() b
  for b in "${K8S_STATIC[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  [[ $KUBELET_CGO == 1 ]] || pkgs+=(k8s.io/kubernetes/cmd/kubelet)
  (cd "$HERE/k8swrap" &&
    CGO_ENABLED=0 gocmd build -mod=readonly -trimpath -tags "$BUILD_TAGS" \
      -ldflags "$ld" -o "$OUT/" "${pkgs[@]}")
  if [[ $KUBELET_CGO == 1 ]]; then
    (cd "$HERE/k8swrap" &&
      CGO_ENABLED=1 gocmd build -mod=readonly -trimpath -tags "$BUILD_TAGS" \
        -ldflags "$ld" -o "$OUT/kubelet" k8s.io/kubernetes/cmd/kubelet)
  fi
}

build_coredns() {
  local v=${COREDNS_VERSION:-$(kubeadm_const CoreDNSVersion)}
  [[ -n $v ]] || die "cannot determine CoreDNS version"
  log "coredns $v"
  # go install pkg@version: coredns' go.mod has no replace directives, so
  # this builds exactly its own go.mod/go.sum (same as upstream Makefile).
  (cd / && CGO_ENABLED=0 GOBIN="$OUT" gocmd install -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$v" \
    "github.com/coredns/coredns@$v")
}

build_etcd() {
  local v=${ETCD_VERSION:-}
  if [[ -z $v ]]; then v=$(kubeadm_const DefaultEtcdVersion); v="v${v%-*}"; fi
  log "etcd $v"
  # `go install go.etcd.io/etcd/server/v3@vX` is refused: etcd's go.mod has
  # replace directives (../api, ../client/...). Build it from a wrapper.
  # etcdctl is opt-in (WITH_ETCDCTL=1): it pulls in etcdutl/v3, whose
  # checksum-db entry this proxy does not serve, and it is not needed by
  # kubeadm (the etcd static pod probes /health over HTTP).
  local tools=(go.etcd.io/etcd/server/v3)
  [[ ${WITH_ETCDCTL:-0} == 1 ]] && tools+=(go.etcd.io/etcd/etcdctl/v3)
  gen_wrapper "$HERE/etcdwrap" ksi-multi/etcdwrap go.etcd.io/etcd/server/v3 "$v" required \
    '^\.\./' "${tools[@]}" || die "cannot resolve etcd $v (set ETCD_VERSION=...)"
  local ld="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$v"
  (cd "$HERE/etcdwrap" &&
    CGO_ENABLED=0 gocmd build -mod=readonly -trimpath -ldflags "$ld" \
      -o "$OUT/etcd" go.etcd.io/etcd/server/v3)
  if [[ ${WITH_ETCDCTL:-0} == 1 ]]; then
    (cd "$HERE/etcdwrap" &&
      CGO_ENABLED=0 gocmd build -mod=readonly -trimpath -ldflags "$ld" \
        -o "$OUT/etcdctl" go.etcd.io/etcd/etcdctl/v3)
  fi
}

build_pause() {
  local v=${PAUSE_VERSION:-}
  [[ -n $v ]] || v=$(kubeadm_const PauseVersion 2>/dev/null || true)
  nice -n "$NICE" gcc -Os -static -Wall -Werror -DVERSION="\"${v:-3.10}-ksi\"" \
    -o "$OUT/pause" "$HERE/pause/pause.c"
  strip "$OUT/pause"
}

write_manifest() {
  local f=$OUT/../versions.env
  {
    echo "K8S_VERSION=$K8S_VERSION"
    echo "GO_VERSION=$("$GO" env GOVERSION)"
    [[ -x $OUT/etcd ]] && echo "ETCD_BINARY=\"$("$OUT/etcd" --version | head -1)\""
    [[ -x $OUT/coredns ]] && echo "COREDNS_BINARY=\"$("$OUT/coredns" -version | head -1)\""
    if [[ -x $OUT/kubeadm ]]; then
      echo "ETCD_IMAGE_TAG=$(kubeadm_const DefaultEtcdVersion)"
      echo "COREDNS_IMAGE_TAG=$(kubeadm_const CoreDNSVersion)"
      echo "PAUSE_IMAGE_TAG=$(kubeadm_const PauseVersion)"
      echo "KUBEADM_IMAGES=\"$("$OUT/kubeadm" config images list \
        --kubernetes-version "$K8S_VERSION" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')\""
    fi
  } >"$f"
  (cd "$OUT" && sha256sum -- * >"$OUT/../SHA256SUMS")
  log "wrote $f and SHA256SUMS"
}

# ---------------------------------------------------------------- main
main() {
  local what=("$@"); [[ ${#what[@]} -gt 0 ]] || what=(all)
  [[ " ${what[*]} " == *" all "* ]] && what=(pause k8s coredns etcd)
  mkdir -p "$OUT" "$LOGDIR" "$GOCACHE" "$GOMODCACHE" "$GOPATH"
  echo "== $(date -u +%FT%TZ) $*" >>"$OUT/../timings.txt"
  log "go=$("$GO" env GOVERSION) k8s=$K8S_VERSION (series $K8S_SERIES) cache=$KSI_GO_CACHE out=$OUT GOMAXPROCS=$GOMAXPROCS"
  local need_k8s=0 s
  for s in "${what[@]}"; do [[ $s == pause ]] || need_k8s=1; done
  # k8swrap is needed even for coredns/etcd: their versions come from kubeadm
  [[ $need_k8s == 1 ]] && timed prepare-k8s prepare_k8s
  for s in "${what[@]}"; do
    case $s in
      k8s) timed build-k8s build_k8s ;;
      coredns) timed build-coredns build_coredns ;;
      etcd) timed build-etcd build_etcd ;;
      pause) timed build-pause build_pause ;;
      *) die "unknown step: $s (want all|k8s|coredns|etcd|pause)" ;;
    esac
  done
  write_manifest
  log "binaries:"; ls -l "$OUT" >&2
  log "cache: $(du -sh "$GOMODCACHE" | cut -f1) modules, $(du -sh "$GOCACHE" | cut -f1) build cache"
}

main "$@"
