#!/bin/sh
# Packs the root filesystem into a firmware image whose bytes depend only on
# its contents: sorted entries, owner 0:0, numeric ids, every mtime set to
# SOURCE_DATE_EPOCH, and gzip without a name or timestamp.
set -eu
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set}"
chmod -R u=rwX,go=rX /tmp/rootfs
tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
  --mtime="@${SOURCE_DATE_EPOCH}" -C /tmp/rootfs -cf - . | gzip -9 -n >/out/afterlife-cam.tar.gz
tar -tvzf /out/afterlife-cam.tar.gz
