#ifndef SWITCHYARD_CMOSQUITTO_SHIM_H
#define SWITCHYARD_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <errno.h>

/* errno is a macro on glibc; expose it as a function Swift can call. */
static inline int cmosquitto_errno(void) { return errno; }
#endif
