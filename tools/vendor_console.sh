#!/bin/sh
# Vendors Leaflet into the console's static files from the npm registry, at build time
# (the console never fetches anything at run time). npm checks the package's integrity.
set -eu
VERSION=1.9.4
DEST=engine/api/console/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "leaflet@$VERSION" --silent >/dev/null)
tar -xzf "$work/leaflet-$VERSION.tgz" -C "$work"
mkdir -p "$DEST/images"
cp "$work/package/dist/leaflet.js" "$work/package/dist/leaflet.css" "$DEST/"
cp "$work/package/dist/images/"*.png "$DEST/images/"
cp "$work/package/LICENSE" "$DEST/LEAFLET-LICENSE"
echo "vendored leaflet $VERSION into $DEST"
