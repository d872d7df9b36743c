#!/bin/sh
# Builds the ACME Thermo firmware from the vendor's escrowed sources, which
# the sandbox mounts read-only under /inputs/escrow/vendor. The prefix maps
# keep sandbox paths out of the image, so every builder gets the same bytes.
set -eu
src=/inputs/escrow/vendor
obj=/tmp/obj
mkdir -p "$obj"

CC=arm-none-eabi-gcc
CFLAGS="-mcpu=cortex-m3 -mthumb -Os -g -std=c11 -Wall -Wextra -Werror
  -ffreestanding -ffunction-sections -fdata-sections
  -ffile-prefix-map=/inputs=. -ffile-prefix-map=/build=. -ffile-prefix-map=/tmp=.
  -I$src"

$CC --version | head -n 1
for c in startup main semihost uart; do
  $CC $CFLAGS -c "$src/$c.c" -o "$obj/$c.o"
done

# newlib-nano supplies strcpy/strcat; no startup files: startup.c is ours.
$CC -mcpu=cortex-m3 -mthumb -nostartfiles --specs=nano.specs \
  -T "$src/lm3s6965.ld" -Wl,--gc-sections -Wl,--build-id=none \
  -o /out/firmware.elf \
  "$obj/startup.o" "$obj/main.o" "$obj/semihost.o" "$obj/uart.o"
arm-none-eabi-objcopy -O binary /out/firmware.elf /out/firmware.bin
arm-none-eabi-size /out/firmware.elf
sha256sum /out/firmware.elf /out/firmware.bin
