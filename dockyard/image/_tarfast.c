/* dockyard.image._tarfast: the two hottest steps of a layer apply, in C.
 *
 * Optional accelerator of dockyard/image/tarstream.py and layer_apply.py, which fall back to
 * their pure-Python code when this extension is not built or DOCKYARD_TARFAST=0. Neither
 * function makes a safety decision: which directory fd a file goes into, under which name, with
 * which owner and mode, stays with layer_apply.py.
 *
 * parse_header(buf, pos): the ustar header at buf[pos:pos+512] as (type, mode, uid, gid, size,
 *   mtime seconds, raw name, raw link name), exactly as tarstream's Python parser gives it, or
 *   None whenever the block is anything but the plain case (zero block, a numeric field that is
 *   not plain octal, a checksum that does not match): the Python parser then decides, with its
 *   own errors, so both paths accept and refuse the same archives.
 * write_file(dir_fd, name, flags, perm, data, start, length, chown, uid, gid, chmod, atime_ns,
 *   mtime_ns): openat + write(data[start:start+length]) + [fchown] + [fchmod] + futimens + close,
 *   the steps layer_apply's Python path makes for a new regular file, in one call without the GIL.
 *   True when done; False, before any system call, when a value does not fit the C types (the
 *   caller then takes its Python path, which raises what Python raises); OSError (FileExistsError
 *   etc., with the name for openat) when a call fails.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 512

/* A plain octal field: spaces, octal digits, then only spaces and NULs. -1 otherwise. */
static int
octal(const unsigned char *f, int len, long long *out)
{
    int i = 0;
    long long v = 0;
    while (i < len && f[i] == ' ')
        i++;
    while (i < len && f[i] >= '0' && f[i] <= '7')
        v = v * 8 + (f[i++] - '0');
    while (i < len && (f[i] == ' ' || f[i] == 0))
        i++;
    if (i != len)
        return -1;
    *out = v;
    return 0;
}

static Py_ssize_t
cstrlen(const unsigned char *f, Py_ssize_t len)
{
    const unsigned char *nul = memchr(f, 0, len);
    return nul ? nul - f : len;
}

static PyObject *
tarfast_parse_header(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "parse_header(buf, pos)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *res = NULL;
    if (pos < 0 || pos > view.len - BLOCK) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    const unsigned char *h = (const unsigned char *)view.buf + pos;
    long long mode, uid, gid, size, mtime, stored;
    if (octal(h + 100, 8, &mode) || octal(h + 108, 8, &uid) || octal(h + 116, 8, &gid)
        || octal(h + 124, 12, &size) || octal(h + 136, 12, &mtime) || octal(h + 148, 8, &stored)) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    /* The checksum: the byte sum with its own field counted as spaces, unsigned or signed. The
     * Python parser compares the unsigned sum modulo 65521 (adler32), then exactly; same here. */
    unsigned int total = 0;  /* a loop the compiler vectorizes */
    for (int i = 0; i < BLOCK; i++)
        total += h[i];
    for (int i = 148; i < 156; i++)
        total -= h[i];
    long long unsigned_sum = (long long)total + 256;
    if ((stored - unsigned_sum) % 65521 != 0) {
        long long high = 0;
        for (int i = 0; i < BLOCK; i++)
            high += (i < 148 || i >= 156) && h[i] > 127;
        if (stored != unsigned_sum - 256 * high) {
            res = Py_NewRef(Py_None);
            goto done;
        }
    }
    Py_ssize_t name_len = h[99] == 0 ? cstrlen(h, 100) : 100;
    PyObject *name;
    if (h[345] != 0 && memcmp(h + 257, "ustar\0", 6) == 0) {
        Py_ssize_t prefix_len = cstrlen(h + 345, 155);
        name = PyBytes_FromStringAndSize(NULL, prefix_len + 1 + name_len);
        if (name == NULL)
            goto done;
        char *p = PyBytes_AS_STRING(name);
        memcpy(p, h + 345, prefix_len);
        p[prefix_len] = '/';
        memcpy(p + prefix_len + 1, h, name_len);
    } else {
        name = PyBytes_FromStringAndSize((const char *)h, name_len);
        if (name == NULL)
            goto done;
    }
    PyObject *link;
    if (h[156] == '1' || h[156] == '2')
        link = PyBytes_FromStringAndSize((const char *)h + 157, cstrlen(h + 157, 100));
    else
        link = PyBytes_FromStringAndSize(NULL, 0);
    if (link == NULL) {
        Py_DECREF(name);
        goto done;
    }
    res = Py_BuildValue("(NLLLLLNN)", PyUnicode_FromOrdinal(h[156]), mode, uid, gid, size, mtime, name, link);
done:
    PyBuffer_Release(&view);
    return res;
}

/* An id for fchown: -1 or 0..2^32-1, as os.fchown accepts; 0 if it does not fit. */
static int
owner_id(PyObject *obj, long long *out)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (overflow || v < -1 || v > 0xFFFFFFFFLL)
        return 0;
    *out = v;
    return 1;
}

static int
timespec_of(PyObject *obj, struct timespec *ts)
{
    int overflow;
    long long ns = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (ns == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (overflow)
        return 0;
    long long sec = ns / 1000000000LL, nsec = ns % 1000000000LL;
    if (nsec < 0) {  /* floor division, as os.utime does */
        nsec += 1000000000LL;
        sec -= 1;
    }
    ts->tv_sec = sec;
    ts->tv_nsec = nsec;
    return 1;
}

static PyObject *
tarfast_write_file(PyObject *self, PyObject *args)
{
    int dir_fd, flags, perm, chown, chmod;
    PyObject *name, *uid_obj, *gid_obj, *atime_obj, *mtime_obj;
    Py_buffer data;
    Py_ssize_t start, length;
    if (!PyArg_ParseTuple(args, "iO&iiy*nnpOOiOO:write_file", &dir_fd, PyUnicode_FSConverter, &name, &flags,
                          &perm, &data, &start, &length, &chown, &uid_obj, &gid_obj, &chmod, &atime_obj,
                          &mtime_obj))
        return NULL;
    PyObject *res = NULL;
    long long uid = -1, gid = -1;
    struct timespec times[2];
    if (start < 0 || length < 0 || start > data.len || length > data.len - start) {
        PyErr_SetString(PyExc_ValueError, "write_file: data range out of the buffer");
        goto done;
    }
    if ((chown && !(owner_id(uid_obj, &uid) && owner_id(gid_obj, &gid)))
        || !timespec_of(atime_obj, &times[0]) || !timespec_of(mtime_obj, &times[1])) {
        res = Py_NewRef(Py_False);
        goto done;
    }
    const char *p = (const char *)data.buf + start;
    int fd, err = 0, opened;
    Py_BEGIN_ALLOW_THREADS
    fd = openat(dir_fd, PyBytes_AS_STRING(name), flags, perm);
    opened = fd >= 0;
    if (!opened)
        err = errno;
    while (opened && length > 0) {
        ssize_t n = write(fd, p, length);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (n == 0) {
            err = EIO;
            break;
        }
        p += n;
        length -= n;
    }
    if (opened && !err && chown && fchown(fd, (uid_t)uid, (gid_t)gid) < 0)
        err = errno;
    if (opened && !err && chmod >= 0 && fchmod(fd, (mode_t)chmod) < 0)
        err = errno;
    if (opened && !err && futimens(fd, times) < 0)
        err = errno;
    if (opened && close(fd) < 0 && !err && errno != EINTR)
        err = errno;
    Py_END_ALLOW_THREADS
    if (err) {
        errno = err;
        if (opened)
            PyErr_SetFromErrno(PyExc_OSError);
        else {
            PyObject *str = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(name));
            if (str != NULL) {
                PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, str);
                Py_DECREF(str);
            }
        }
        goto done;
    }
    res = Py_NewRef(Py_True);
done:
    Py_DECREF(name);
    PyBuffer_Release(&data);
    return res;
}

static PyMethodDef methods[] = {
    {"parse_header", (PyCFunction)(void (*)(void))tarfast_parse_header, METH_FASTCALL,
     "parse_header(buf, pos) -> (type, mode, uid, gid, size, mtime, raw_name, raw_link) or None"},
    {"write_file", tarfast_write_file, METH_VARARGS,
     "write_file(dir_fd, name, flags, perm, data, start, length, chown, uid, gid, chmod, atime_ns, mtime_ns)"
     " -> True, or False when a value does not fit (nothing done)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dockyard.image._tarfast",
    "Tar header parsing and file writing for layer apply (optional accelerator).", -1, methods,
};

PyMODINIT_FUNC
PyInit__tarfast(void)
{
    return PyModule_Create(&module);
}
