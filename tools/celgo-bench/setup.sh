#!/bin/sh
# Lays out a GOPATH for the cel-go benchmark, offline, from local git repositories.
#
#   CELGO_GIT    git dir of github.com/google/cel-go   (e.g. a clone's .git, or a bare mirror)
#   SIGSJSON_GIT git dir of github.com/kubernetes-sigs/json
#   CELGO_REV    cel-go tag/commit           (default v0.26.1; v0.21.0 builds with Go 1.19)
#   SIGSJSON_REV sigs.k8s.io/json commit     (default cfa47c3 = the version Kubernetes 1.3x pins;
#                                             e386a8a is the last one that builds with Go < 1.23)
#   GOPATH_DIR   where to lay it out         (default /tmp/celgo/gopath)
#
# cel-go's tagged trees carry their own vendor/ directory (antlr, go-strcase,
# x/text, x/exp, genproto, protobuf, cel.dev/expr), so nothing else is needed:
# the build runs in GOPATH mode (GO111MODULE=off), where that vendor/ applies to
# every cel-go package, and with GOPROXY=off.
set -eu
: "${CELGO_GIT:?set CELGO_GIT}" "${SIGSJSON_GIT:?set SIGSJSON_GIT}"
CELGO_REV=${CELGO_REV:-v0.26.1}
SIGSJSON_REV=${SIGSJSON_REV:-cfa47c3a1cc8ff0eff148aa9ec5b0226d0909e87}
GOPATH_DIR=${GOPATH_DIR:-/tmp/celgo/gopath}
here=$(cd "$(dirname "$0")" && pwd)

rm -rf "$GOPATH_DIR/src/github.com/google/cel-go" "$GOPATH_DIR/src/sigs.k8s.io/json" "$GOPATH_DIR/src/celgobench"
mkdir -p "$GOPATH_DIR/src/github.com/google/cel-go" "$GOPATH_DIR/src/sigs.k8s.io/json" "$GOPATH_DIR/src/celgobench"
git --git-dir="$CELGO_GIT" archive "$CELGO_REV" | tar -x -C "$GOPATH_DIR/src/github.com/google/cel-go"
git --git-dir="$SIGSJSON_GIT" archive "$SIGSJSON_REV" | tar -x -C "$GOPATH_DIR/src/sigs.k8s.io/json"
cp "$here/bench_test.go" "$GOPATH_DIR/src/celgobench/"
echo "cel-go $(git --git-dir="$CELGO_GIT" rev-parse "$CELGO_REV^{commit}") ($CELGO_REV)"
echo "sigs.k8s.io/json $(git --git-dir="$SIGSJSON_GIT" rev-parse "$SIGSJSON_REV^{commit}")"
echo "GOPATH=$GOPATH_DIR; package dir $GOPATH_DIR/src/celgobench"
