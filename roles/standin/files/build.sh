#!/usr/bin/env bash
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Builds the stand-in EKM package the `server` role installs like the vendor's (run by the standin role, the
# tests and the demo):
#   OUTDIR/ekm-standin-0.1.0.tar.gz  (ekm-standin-0.1.0/lib/ekm-standin.jar, ekm-standin-0.1.0/README.txt)
#   OUTDIR/ekm-standin-0.1.0.tar.gz.sha256  (sha256sum format)
# and prints the archive's path. Does nothing when the archive is newer than every source.
# Timestamps come from SOURCE_DATE_EPOCH (default: a fixed date) so rebuilds of the same
# sources by the same JDK give the same bytes.
set -euo pipefail

version=0.1.0
name="ekm-standin-${version}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1"
outdir="$(cd "$1" && pwd)"
archive="${outdir}/${name}.tar.gz"

if [ -f "$archive" ] && [ -f "${archive}.sha256" ] \
        && [ -z "$(find "${here}/src" "${here}/README.txt" "${here}/build.sh" -newer "$archive" -print -quit)" ]; then
    echo "build.sh: up to date: $archive" >&2
    echo "$archive"
    exit 0
fi

for tool in javac jar tar gzip sha256sum; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build.sh: '$tool' is not installed; the stand-in needs a JDK (11 or newer) and GNU tar" >&2
        exit 1
    fi
done

epoch="${SOURCE_DATE_EPOCH:-1767225600}"
jar_date="$(date -u -d "@${epoch}" +%Y-%m-%dT%H:%M:%SZ)"

work="$(mktemp -d "${outdir}/.${name}.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "${work}/classes" "${work}/stage/${name}/lib"

find "${here}/src" -name '*.java' | LC_ALL=C sort > "${work}/sources.txt"
# C1 only: a compile this small finishes sooner without the optimising compiler's warm-up.
javac -J-XX:TieredStopAtLevel=1 --release 11 -encoding UTF-8 -Xlint:all -Werror -d "${work}/classes" "@${work}/sources.txt"

printf 'Main-Class: tapecrypt.standin.EkmStandin\nImplementation-Title: tapecrypt EKM stand-in\nImplementation-Version: %s\n' \
    "$version" > "${work}/manifest.txt"
(
    cd "${work}/classes"
    find . -name '*.class' | LC_ALL=C sort > ../classes.txt
    jar --create --file "${work}/stage/${name}/lib/ekm-standin.jar" --manifest ../manifest.txt --date "$jar_date" "@../classes.txt"
)
cp "${here}/README.txt" "${work}/stage/${name}/README.txt"
chmod 0644 "${work}/stage/${name}/README.txt" "${work}/stage/${name}/lib/ekm-standin.jar"

tar --sort=name --mtime="@${epoch}" --owner=0 --group=0 --numeric-owner --mode='u+rwX,go+rX,go-w' \
    -C "${work}/stage" -cf - "$name" | gzip -n -9 > "${work}/${name}.tar.gz"
(cd "$work" && sha256sum "${name}.tar.gz" > "${name}.tar.gz.sha256")

# The same sources built by the same JDK give the same bytes: then the archive is only touched, so that
# whoever installed it (the server role compares checksums) sees no change. Otherwise the archive goes
# last: its mtime is what the up-to-date check above compares against.
if [ -f "$archive" ] && [ -f "${archive}.sha256" ] && cmp -s "${work}/${name}.tar.gz" "$archive"; then
    touch "$archive"
    echo "build.sh: unchanged: $archive" >&2
else
    mv -f "${work}/${name}.tar.gz.sha256" "${archive}.sha256"
    mv -f "${work}/${name}.tar.gz" "$archive"
    echo "build.sh: built: $archive" >&2
fi
echo "$archive"
