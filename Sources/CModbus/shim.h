#ifndef SWITCHYARD_CMODBUS_SHIM_H
#define SWITCHYARD_CMODBUS_SHIM_H
#include <modbus.h>
#include <errno.h>

/* errno is a macro on glibc; expose it as functions Swift can call. */
static inline int cmodbus_errno(void) { return errno; }
static inline void cmodbus_set_errno(int e) { errno = e; }

/* libmodbus-specific error codes (MODBUS_ENOBASE + n), as plain ints. */
static inline int cmodbus_enobase(void) { return MODBUS_ENOBASE; }
static inline int cmodbus_embbadcrc(void) { return EMBBADCRC; }
static inline int cmodbus_embbaddata(void) { return EMBBADDATA; }
static inline int cmodbus_embbadexc(void) { return EMBBADEXC; }
static inline int cmodbus_embunkexc(void) { return EMBUNKEXC; }
static inline int cmodbus_embmdata(void) { return EMBMDATA; }
static inline int cmodbus_embbadslave(void) { return EMBBADSLAVE; }
#endif
