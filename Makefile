# luatalloc — build, install and package the self-contained products.
#
#   make                      luatalloc and the Lua module (release; the Swift runtime linked in)
#   make install              install under PREFIX (default /usr/local); DESTDIR stages elsewhere
#   make uninstall            remove what `make install` put there (same PREFIX and DESTDIR)
#   make deb                  a Debian package, built with dpkg-deb: $(SCRATCH)/deb/luatalloc_VERSION_ARCH.deb
#   make pictures             regenerate docs/images/*.svg (tools/render-pictures.sh)
#   make check-install        prove all of it on this machine (.ci/install-check)
#   make sizes                the products' sizes, as built and as installed (stripped)
#   make clean                remove $(SCRATCH)
#
# What goes where (PREFIX=/usr/local):
#   bin/luatalloc                      the program (a drop-in for lua5.4, with talloc)
#   lib/lua/5.4/talloc.so              the module for a stock lua5.4: require "talloc"
#   share/man/man1/luatalloc.1         the man page
#   share/doc/luatalloc/               README.md, BENCHMARKS.md, docs/, scripts/ (the chapter scripts)
#
# Both products link the Swift standard library and runtime statically: they need only Debian's
# liblua5.4-0 and libedit2 (and libc6, libstdc++6, libgcc-s1, which every Debian has), not Swift.
# LuaRocks builds through the targets `rock` and `install-rock` (rockspecs/luatalloc-scm-1.rockspec).

VERSION      := 0.1.0
DEB_REVISION := 1

PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       ?= $(PREFIX)/bin
LUA_VERSION  := 5.4
LUA_CMODDIR  ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
MANDIR       ?= $(PREFIX)/share/man
DOCDIR       ?= $(PREFIX)/share/doc/luatalloc

SWIFT        ?= swift
# SwiftPM builds the C targets with the toolchain's clang: a CC or CFLAGS from the environment or the
# command line (LuaRocks passes CC=gcc) must not reach it.
SWIFT_BUILD  = env -u CC -u CXX -u CFLAGS -u CPPFLAGS -u CXXFLAGS -u LDFLAGS $(SWIFT) build
STRIP        ?= strip
INSTALL      ?= install
SCRATCH      ?= .build-static
# Release, Swift runtime linked in, no $ORIGIN rpath; the module exports only luaopen_talloc.
SWIFT_FLAGS  := -c release --scratch-path $(SCRATCH) -Xswiftc -static-stdlib --disable-local-rpath
MODULE_FLAGS := -Xlinker --version-script=$(CURDIR)/packaging/talloc.map
PROGRAM      := $(SCRATCH)/release/luatalloc
MODULE       := $(SCRATCH)/release/libtalloc.so

DOCS         := README.md BENCHMARKS.md
DOCS_SUB     := docs/EMBEDDING.md
IMAGES       := $(wildcard docs/images/*.svg)
SCRIPTS      := $(wildcard scripts/[0-9]*.lua)
EXPECTED     := $(wildcard scripts/expected/*.txt)

.PHONY: all build program module install uninstall deb pictures check-install sizes clean rock install-rock

all: build

build: program module

# `make`, `make program`, `make module`: SwiftPM decides what is out of date (quick when nothing is).
program:
	$(SWIFT_BUILD) $(SWIFT_FLAGS) --product luatalloc

module:
	$(SWIFT_BUILD) $(SWIFT_FLAGS) --product talloc $(MODULE_FLAGS)

# install and install-rock build only what is missing, so that `make && sudo make install` never runs
# SwiftPM as root in the build directory (run `make` first after a change).
$(PROGRAM):
	$(MAKE) --no-print-directory program

$(MODULE):
	$(MAKE) --no-print-directory module

install: $(PROGRAM) $(MODULE)
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(LUA_CMODDIR)" "$(DESTDIR)$(MANDIR)/man1" \
	    "$(DESTDIR)$(DOCDIR)/docs/images" "$(DESTDIR)$(DOCDIR)/scripts/expected"
	$(INSTALL) -m 0755 $(PROGRAM) "$(DESTDIR)$(BINDIR)/luatalloc"
	$(STRIP) "$(DESTDIR)$(BINDIR)/luatalloc"
	$(INSTALL) -m 0644 $(MODULE) "$(DESTDIR)$(LUA_CMODDIR)/talloc.so"
	$(STRIP) --strip-unneeded "$(DESTDIR)$(LUA_CMODDIR)/talloc.so"
	$(INSTALL) -m 0644 docs/man/luatalloc.1 "$(DESTDIR)$(MANDIR)/man1/luatalloc.1"
	$(INSTALL) -m 0644 $(DOCS) "$(DESTDIR)$(DOCDIR)/"
	$(INSTALL) -m 0644 $(DOCS_SUB) "$(DESTDIR)$(DOCDIR)/docs/"
	$(INSTALL) -m 0644 $(IMAGES) "$(DESTDIR)$(DOCDIR)/docs/images/"
	$(INSTALL) -m 0644 $(SCRIPTS) "$(DESTDIR)$(DOCDIR)/scripts/"
	$(INSTALL) -m 0644 $(EXPECTED) "$(DESTDIR)$(DOCDIR)/scripts/expected/"

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/luatalloc" "$(DESTDIR)$(LUA_CMODDIR)/talloc.so" \
	    "$(DESTDIR)$(MANDIR)/man1/luatalloc.1"
	rm -rf "$(DESTDIR)$(DOCDIR)"

# LuaRocks (build type "make"): `rock` builds, `install-rock` copies into the rock's directories, which
# LuaRocks then deploys (the module to its tree's lib/lua/5.4/talloc.so, the program to its bin/).
rock: build

install-rock: $(PROGRAM) $(MODULE)
	test -n "$(ROCK_LIBDIR)" && test -n "$(ROCK_BINDIR)"
	$(INSTALL) -d "$(ROCK_LIBDIR)" "$(ROCK_BINDIR)"
	$(INSTALL) -m 0644 $(MODULE) "$(ROCK_LIBDIR)/talloc.so"
	$(STRIP) --strip-unneeded "$(ROCK_LIBDIR)/talloc.so"
	$(INSTALL) -m 0755 $(PROGRAM) "$(ROCK_BINDIR)/luatalloc"
	$(STRIP) "$(ROCK_BINDIR)/luatalloc"

# The Debian package: what `make install` puts under /usr (the module where Debian's lua5.4 looks:
# /usr/lib/<multiarch>/lua/5.4), the man page compressed, a copyright file, and Depends computed by
# dpkg-shlibdeps from the binaries (libc6, libedit2, libgcc-s1, liblua5.4-0, libstdc++6).
DEB_ARCH      = $(shell dpkg --print-architecture)
DEB_MULTIARCH = $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
DEB_WORK      := $(SCRATCH)/deb
DEB_ROOT      := $(DEB_WORK)/debian/luatalloc
DEB_FILE       = $(DEB_WORK)/luatalloc_$(VERSION)-$(DEB_REVISION)_$(DEB_ARCH).deb
# The files' dates in the package: the last commit's, so that the same commit gives the same package.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

deb: build
	rm -rf "$(DEB_WORK)"
	$(MAKE) --no-print-directory install DESTDIR="$(CURDIR)/$(DEB_ROOT)" PREFIX=/usr \
	    LUA_CMODDIR=/usr/lib/$(DEB_MULTIARCH)/lua/$(LUA_VERSION)
	gzip -9n "$(DEB_ROOT)/usr/share/man/man1/luatalloc.1"
	$(INSTALL) -m 0644 packaging/copyright "$(DEB_ROOT)/usr/share/doc/luatalloc/copyright"
	$(INSTALL) -d "$(DEB_ROOT)/DEBIAN"
	touch "$(DEB_WORK)/debian/control"
	cd "$(DEB_WORK)" && dpkg-shlibdeps -O debian/luatalloc/usr/bin/luatalloc \
	    debian/luatalloc/usr/lib/$(DEB_MULTIARCH)/lua/$(LUA_VERSION)/talloc.so | sed 's/^shlibs:Depends=//' > depends
	sed -e 's/@VERSION@/$(VERSION)-$(DEB_REVISION)/' -e 's/@ARCH@/$(DEB_ARCH)/' \
	    -e "s/@DEPENDS@/$$(cat $(DEB_WORK)/depends)/" \
	    -e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)/" \
	    packaging/control.in > "$(DEB_ROOT)/DEBIAN/control"
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) dpkg-deb --root-owner-group -Zxz --build "$(DEB_ROOT)" "$(DEB_FILE)"
	@echo "deb: $(DEB_FILE)"

pictures:
	tools/render-pictures.sh

check-install:
	.ci/install-check

sizes: build
	@rm -rf "$(SCRATCH)/sizes" && mkdir -p "$(SCRATCH)/sizes"
	@$(STRIP) -o "$(SCRATCH)/sizes/luatalloc" $(PROGRAM)
	@$(STRIP) --strip-unneeded -o "$(SCRATCH)/sizes/talloc.so" $(MODULE)
	@printf '%-26s %12s %12s\n' product built stripped
	@printf '%-26s %12s %12s\n' bin/luatalloc $$(stat -c %s $(PROGRAM)) $$(stat -c %s "$(SCRATCH)/sizes/luatalloc")
	@printf '%-26s %12s %12s\n' lib/lua/5.4/talloc.so $$(stat -c %s $(MODULE)) $$(stat -c %s "$(SCRATCH)/sizes/talloc.so")

clean:
	rm -rf "$(SCRATCH)"
