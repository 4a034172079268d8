/* A Modbus/TCP server on Debian's libmodbus, for `compare` (benches/src/bin/compare.rs).
 * Built at run time: gcc -O2 -o libmodbus_server libmodbus_server.c -l:libmodbus.so.5
 * Usage: libmodbus_server PORT. Serves 100 holding registers (and 100 of each other
 * table), one connection at a time, until killed; prints "ready" once listening.
 * The prototypes are libmodbus 3.1's, declared here so that only the runtime library
 * (libmodbus5) is needed, not its headers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct _modbus modbus_t;
typedef struct _modbus_mapping modbus_mapping_t; /* used only through its pointer */
modbus_t *modbus_new_tcp(const char *ip, int port);
int modbus_tcp_listen(modbus_t *ctx, int nb_connection);
int modbus_tcp_accept(modbus_t *ctx, int *s);
modbus_mapping_t *modbus_mapping_new(int bits, int input_bits, int registers, int input_registers);
int modbus_receive(modbus_t *ctx, uint8_t *req);
int modbus_reply(modbus_t *ctx, const uint8_t *req, int req_length, modbus_mapping_t *map);

#define MAX_ADU 260 /* MODBUS_TCP_MAX_ADU_LENGTH */

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
    modbus_mapping_t *map = modbus_mapping_new(100, 100, 100, 100);
    int listener = ctx && map ? modbus_tcp_listen(ctx, 1) : -1;
    if (listener < 0) {
        perror("libmodbus_server");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    uint8_t req[MAX_ADU];
    for (;;) {
        int s = modbus_tcp_accept(ctx, &listener);
        if (s < 0)
            continue;
        for (;;) {
            int n = modbus_receive(ctx, req);
            if (n < 0)
                break;
            if (n > 0 && modbus_reply(ctx, req, n, map) < 0)
                break;
        }
        close(s);
    }
}
