#!/usr/bin/env bash
# govulncheck in CI (第4 7(1)イ). vuln.go.dev cannot be reached from these
# machines, so the vulnerability database is built from the golang.org/x/vulndb
# module, fetched through the Go module proxy like any module, with the
# database's own indexer. The check runs with the toolchain production builds
# use: Go 1.26.8 has standard-library vulnerabilities fixed in 1.26.9/1.27.
set -euo pipefail
cd "$(dirname "$0")/.."
VULNDB=v0.0.0-20261105234957-e22db6528018
GOVULNCHECK=v1.9.0
export GOTOOLCHAIN="${TAXLINK_RELEASE_TOOLCHAIN:-go1.27.3}"
export GOFLAGS=-mod=mod
dir=$(cd /tmp && go mod download -json "golang.org/x/vulndb@$VULNDB" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
(cd /tmp && go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB" -vulns "$dir/data/osv" -out "$db")
GOFLAGS=-mod=readonly go run "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK" -db "file://$db" ./...
