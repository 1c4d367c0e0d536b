#ifndef SWITCHYARD_CI2C_SHIM_H
#define SWITCHYARD_CI2C_SHIM_H
#include <linux/i2c-dev.h>
#include <i2c/smbus.h>
#include <sys/ioctl.h>
#include <errno.h>
static inline int ci2c_errno(void) { return errno; }
static inline int ci2c_set_slave(int fd, int addr) { return ioctl(fd, I2C_SLAVE, addr); }
#endif
