/* version: ccomet's release version, shown by the MySQL handshake, @@version, /info and the
 * default index page. One place, so the protocols never disagree. */
#ifndef CC_VERSION_H
#define CC_VERSION_H

#define CCOMET_VERSION "0.1.0"

#endif
