# The build of a static guest program, included by the Makefiles of the launcher, the
# conditions program and the paths program (each sets OUT and SRC first); run by
# rmapwalk.measure.initramfs.build_static as `make -C <dir> OUT=<path>`.  Part of the sha256
# that names each cached binary (rmapwalk.measure.guestrun.source_key).
CC ?= gcc
CFLAGS ?= -O2
CFLAGS += -static -Wall -Wextra -Werror -std=gnu11
# guest.h: the helpers the guest programs share
CFLAGS += -I../guest-common

$(OUT): $(SRC) ../guest-common/guest.h ../guest-common/guest.mk
	$(CC) $(CFLAGS) -o $@ $<

clean:
	rm -f $(notdir $(SRC:.c=))

.PHONY: clean
