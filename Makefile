# sluice build. Output goes to $(BUILD) (build/ by default, build-asan/ for `make asan`).
#
#   make            build build/sluice
#   make run        install deps if missing, build, run on conf/sluice.yaml
#   make test       install deps if missing, build, run unit + integration + fuzz smoke
#   make unit       cmocka unit tests only
#   make asan       the unit and integration suites under ASan + UBSan (build-asan/)
#   make fuzz       each libFuzzer target for FUZZ_SECONDS (default 60) seconds
#   make bench      benchmarks (see BENCHMARKS.md)
#   make deps       apt-get install what is missing (idempotent)
#   make install    install under $(DESTDIR)$(PREFIX)

BUILD    ?= build
CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
CONF     ?= conf/sluice.yaml

PKGS      := libevent libevent_pthreads yaml-0.1 jansson libwebsockets libisal libsystemd rdkafka openssl \
             zlib liblz4 libzstd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT      ?= -O2
CFLAGS   ?=
CFLAGS   += -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -Wno-unused-parameter \
            -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
            -D_GNU_SOURCE -pthread -I. $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS  += -pthread $(SANFLAGS)
LDLIBS   += $(PKG_LIBS) -lpaho-mqtt3as -lm

# Every module is a .c beside its .h; main.c is the daemon's entry point only.
LIB_SRC  := $(sort $(wildcard gateway/*.c gateway/log/*.c routing/*.c adapters/*/*.c))
LIB_SRC  := $(filter-out gateway/main.c,$(LIB_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libsluice.a

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

BENCH_SRC := $(sort $(wildcard tests/bench/*.c))
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5

.PHONY: all run test unit integration asan fuzz fuzz-build fuzz-smoke bench deps install clean check-config

all: $(BUILD)/sluice

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/sluice: $(BUILD)/obj/gateway/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $(shell pkg-config --cflags cmocka) -o $@ $< $(LIB) \
	    $(LDFLAGS) $(LDLIBS) $(shell pkg-config --libs cmocka)

$(BUILD)/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

# libFuzzer targets: clang, the whole library rebuilt with the fuzzer's instrumentation.
FUZZ_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
$(BUILD)/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	@clang -std=gnu11 -O1 -g -D_GNU_SOURCE -DSL_FUZZING -pthread -I. $(PKG_CFLAGS) $(FUZZ_FLAGS) \
	    -MMD -MP -c $< -o $@
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRC:%.c=$(BUILD)/fuzzobj/%.o)
	@mkdir -p $(dir $@)
	clang -std=gnu11 -O1 -g -D_GNU_SOURCE -DSL_FUZZING -pthread -I. $(PKG_CFLAGS) \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    -o $@ $^ $(PKG_LIBS) -lpaho-mqtt3as -lm

run: deps $(BUILD)/sluice
	mkdir -p data
	./$(BUILD)/sluice -c $(CONF)

check-config: $(BUILD)/sluice
	./$(BUILD)/sluice --check -c $(CONF)

unit: $(UNIT_BIN)
	@tests/run_unit.sh $(UNIT_BIN)

integration: $(BUILD)/sluice
	@SLUICE_BIN=$(abspath $(BUILD)/sluice) tests/integration/run.sh

fuzz-build: $(FUZZ_BIN)

fuzz-smoke: $(FUZZ_BIN)
	@tests/fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_BIN)

fuzz: deps $(FUZZ_BIN)
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

# The README's test command: everything a fresh Debian 12 machine needs, then every suite.
test: deps
	$(MAKE) all $(UNIT_BIN) $(FUZZ_BIN)
	@tests/run_all.sh $(BUILD)

asan: deps
	$(MAKE) BUILD=build-asan OPT=-O1 SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	    build-asan/sluice $(UNIT_BIN:$(BUILD)/%=build-asan/%)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    SKIP_FUZZ=1 tests/run_all.sh build-asan

bench: deps all $(BENCH_BIN)
	@tests/bench/run.sh $(BUILD)

deps:
	@tests/deps.sh

install: $(BUILD)/sluice
	install -D -m 0755 $(BUILD)/sluice $(DESTDIR)$(PREFIX)/bin/sluice
	@# An existing config is the operator's: the new one goes beside it as .dist.
	@conf=$(DESTDIR)/etc/sluice/sluice.yaml; \
	if [ -e "$$conf" ]; then conf=$$conf.dist; \
	  echo "install: $(DESTDIR)/etc/sluice/sluice.yaml kept; the new one is $$conf"; fi; \
	install -D -m 0644 conf/sluice.yaml "$$conf" && \
	sed -i 's|^    # web_root: web$$|    web_root: $(PREFIX)/share/sluice/web|' "$$conf"
	install -D -m 0644 systemd/sluice.service $(DESTDIR)$(PREFIX)/lib/systemd/system/sluice.service
	sed -i 's|/usr/local/|$(PREFIX)/|g' $(DESTDIR)$(PREFIX)/lib/systemd/system/sluice.service
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/sluice/README.md
	install -D -m 0644 systemd/sluice.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/sluice.conf
	install -D -m 0644 systemd/sluice.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/sluice.conf
	install -D -m 0644 web/index.html $(DESTDIR)$(PREFIX)/share/sluice/web/index.html

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) build-asan -name '*.d' 2>/dev/null)
