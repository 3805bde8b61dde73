#!/bin/sh
# SPDX-License-Identifier: MIT
# ldconfig.sh install|uninstall DESTDIR LIBDIR - run by make install and
# make uninstall. With no DESTDIR, and LIBDIR one of the directories the
# dynamic loader searches (ldconfig's configuration: /etc/ld.so.conf and
# /etc/ld.so.conf.d/*, and the built-in /lib and /usr/lib), it runs
# ldconfig so that the loader's cache knows libtaskq.so.0 (or forgets it).
# For any other LIBDIR it says how programs find the library. With a
# DESTDIR (a staging directory for a package) it does nothing: the
# package's own installation runs ldconfig.
set -eu
what=$1 destdir=$2 libdir=$3
[ -z "$destdir" ] || exit 0
LDCONFIG=$(command -v ldconfig 2>/dev/null || echo /sbin/ldconfig)

# The directories ldconfig would scan: lines "DIR: (from FILE:LINE)" of
# ldconfig -v; -N -X: neither the cache nor any link is written.
searched=false
for d in $("$LDCONFIG" -v -N -X 2>/dev/null | sed -n 's|^\(/[^:]*\):.*|\1|p'); do
	# -ef: the same directory, however named (/lib and /usr/lib on a
	# merged /usr).
	if [ -d "$libdir" ] && [ "$d" -ef "$libdir" ]; then
		searched=true
		break
	fi
done

if $searched; then
	echo "ldconfig ($libdir)"
	exec "$LDCONFIG"
fi
[ "$what" = install ] || exit 0
cat <<MSG
taskq: $libdir is not a directory the dynamic loader searches, so programs
linked with -ltaskq will not find libtaskq.so.0 there by themselves. Either:
  - add it to the loader's path (as root), once:
      echo $libdir > /etc/ld.so.conf.d/taskq.conf && ldconfig
  - or set LD_LIBRARY_PATH=$libdir when running them,
  - or link them with an rpath:
      cc prog.c \$(pkg-config --cflags --libs taskq) -Wl,-rpath,\$(pkg-config --variable=libdir taskq)
  (PKG_CONFIG_PATH=$libdir/pkgconfig if pkg-config does not find taskq.)
The taskq and taskq-bridge programs carry the library inside and need none of this.
MSG
