/* dockyard.runtime._linux: the Linux system calls of the runtime's hot path, without ctypes.
 *
 * Optional accelerator of dockyard/runtime/syscalls.py (which falls back to ctypes when this
 * extension is not built): importing ctypes and declaring the prototypes costs ~3 ms on every
 * runtime command, this module well under one. Every function is a thin call: it returns the
 * system call's result, or -errno on failure; syscalls.py turns failures into OSError with a
 * description of the call. String arguments are bytes or None (syscalls.py encodes paths).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* bytes -> its buffer, None -> NULL (an "O&" converter). */
static int
bytes_or_null(PyObject *obj, void *out)
{
    if (obj == Py_None) {
        *(const char **)out = NULL;
        return 1;
    }
    if (!PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "expected bytes or None, not %.100s", Py_TYPE(obj)->tp_name);
        return 0;
    }
    *(const char **)out = PyBytes_AS_STRING(obj);
    return 1;
}

static PyObject *
result(long ret)
{
    return PyLong_FromLong(ret < 0 ? -errno : ret);
}

static PyObject *
linux_unshare(PyObject *self, PyObject *args)
{
    int flags;
    if (!PyArg_ParseTuple(args, "i:unshare", &flags))
        return NULL;
    return result(unshare(flags));
}

static PyObject *
linux_setns(PyObject *self, PyObject *args)
{
    int fd, nstype;
    if (!PyArg_ParseTuple(args, "ii:setns", &fd, &nstype))
        return NULL;
    return result(setns(fd, nstype));
}

static PyObject *
linux_mount(PyObject *self, PyObject *args)
{
    const char *source, *target, *fstype, *data;
    unsigned long flags;
    if (!PyArg_ParseTuple(args, "O&O&O&kO&:mount", bytes_or_null, &source, bytes_or_null, &target,
                          bytes_or_null, &fstype, &flags, bytes_or_null, &data))
        return NULL;
    return result(mount(source, target, fstype, flags, data));
}

static PyObject *
linux_umount2(PyObject *self, PyObject *args)
{
    const char *target;
    int flags;
    if (!PyArg_ParseTuple(args, "O&i:umount2", bytes_or_null, &target, &flags))
        return NULL;
    return result(umount2(target, flags));
}

static PyObject *
linux_pivot_root(PyObject *self, PyObject *args)
{
    const char *new_root, *put_old;
    if (!PyArg_ParseTuple(args, "O&O&:pivot_root", bytes_or_null, &new_root, bytes_or_null, &put_old))
        return NULL;
    return result(syscall(SYS_pivot_root, new_root, put_old));
}

static PyObject *
linux_prctl(PyObject *self, PyObject *args)
{
    int option;
    unsigned long a2, a3, a4, a5;
    if (!PyArg_ParseTuple(args, "ikkkk:prctl", &option, &a2, &a3, &a4, &a5))
        return NULL;
    return result(prctl(option, a2, a3, a4, a5));
}

static PyObject *
linux_sethostname(PyObject *self, PyObject *args)
{
    const char *name;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "y#:sethostname", &name, &len))
        return NULL;
    return result(sethostname(name, (size_t)len));
}

static PyObject *
linux_setdomainname(PyObject *self, PyObject *args)
{
    const char *name;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "y#:setdomainname", &name, &len))
        return NULL;
    return result(setdomainname(name, (size_t)len));
}

/* capset(2) for the calling thread with 64-bit masks (two 32-bit halves, version 3). */
static PyObject *
linux_capset(PyObject *self, PyObject *args)
{
    unsigned long long eff, perm, inh;
    if (!PyArg_ParseTuple(args, "KKK:capset", &eff, &perm, &inh))
        return NULL;
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(eff >> (32 * i));
        data[i].permitted = (uint32_t)(perm >> (32 * i));
        data[i].inheritable = (uint32_t)(inh >> (32 * i));
    }
    return result(syscall(SYS_capset, &header, data));
}

/* seccomp(SECCOMP_SET_MODE_FILTER, flags, program) with a program of 8-byte instructions. */
static PyObject *
linux_seccomp_filter(PyObject *self, PyObject *args)
{
    unsigned int flags;
    const char *program;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "Iy#:seccomp_filter", &flags, &program, &len))
        return NULL;
    if (len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "a BPF program is a whole number of 8-byte instructions, at most 65535");
        return NULL;
    }
    struct sock_fprog prog = {(unsigned short)(len / sizeof(struct sock_filter)), (struct sock_filter *)program};
    return result(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog));
}

/* (version, API level) of libseccomp.so.2, or None when it cannot be loaded: what the runtime's
 * compiled-program cache is keyed on, without loading the library through ctypes. */
static PyObject *
linux_libseccomp_info(PyObject *self, PyObject *noargs)
{
    struct version { unsigned int major, minor, micro; };
    void *lib = dlopen("libseccomp.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
        Py_RETURN_NONE;
    const struct version *(*version)(void) = (const struct version *(*)(void))dlsym(lib, "seccomp_version");
    unsigned int (*api_get)(void) = (unsigned int (*)(void))dlsym(lib, "seccomp_api_get");
    if (version == NULL || api_get == NULL)
        Py_RETURN_NONE;
    const struct version *v = version();
    return Py_BuildValue("(NI)", PyUnicode_FromFormat("%u.%u.%u", v->major, v->minor, v->micro), api_get());
}

/* prlimit(2) of the calling process: set (soft, hard) of a resource and return the previous
 * pair. Limits are unsigned 64-bit: RLIM_INFINITY is 2**64 - 1, as in the runtime spec. */
static PyObject *
linux_prlimit(PyObject *self, PyObject *args)
{
    int resource;
    PyObject *new_limits;
    if (!PyArg_ParseTuple(args, "iO:prlimit", &resource, &new_limits))
        return NULL;
    struct rlimit new_rl, old_rl;
    if (new_limits != Py_None) {
        unsigned long long soft, hard;
        if (!PyArg_ParseTuple(new_limits, "KK:prlimit", &soft, &hard))
            return NULL;
        new_rl.rlim_cur = soft;
        new_rl.rlim_max = hard;
    }
    if (prlimit(0, resource, new_limits != Py_None ? &new_rl : NULL, &old_rl) < 0)
        return PyLong_FromLong(-errno);
    return Py_BuildValue("(KK)", (unsigned long long)old_rl.rlim_cur, (unsigned long long)old_rl.rlim_max);
}

static PyMethodDef methods[] = {
    {"unshare", linux_unshare, METH_VARARGS, "unshare(flags) -> 0 or -errno"},
    {"setns", linux_setns, METH_VARARGS, "setns(fd, nstype) -> 0 or -errno"},
    {"mount", linux_mount, METH_VARARGS, "mount(source, target, fstype, flags, data) -> 0 or -errno"},
    {"umount2", linux_umount2, METH_VARARGS, "umount2(target, flags) -> 0 or -errno"},
    {"pivot_root", linux_pivot_root, METH_VARARGS, "pivot_root(new_root, put_old) -> 0 or -errno"},
    {"prctl", linux_prctl, METH_VARARGS, "prctl(option, arg2, arg3, arg4, arg5) -> result or -errno"},
    {"sethostname", linux_sethostname, METH_VARARGS, "sethostname(name) -> 0 or -errno"},
    {"setdomainname", linux_setdomainname, METH_VARARGS, "setdomainname(name) -> 0 or -errno"},
    {"capset", linux_capset, METH_VARARGS, "capset(effective, permitted, inheritable) -> 0 or -errno"},
    {"seccomp_filter", linux_seccomp_filter, METH_VARARGS, "seccomp_filter(flags, program) -> 0 or -errno"},
    {"libseccomp_info", linux_libseccomp_info, METH_NOARGS, "libseccomp_info() -> (version, api level) or None"},
    {"prlimit", linux_prlimit, METH_VARARGS, "prlimit(resource, (soft, hard) or None) -> old (soft, hard) or -errno"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dockyard.runtime._linux",
    "The runtime's hot system calls (optional accelerator of dockyard.runtime.syscalls).", -1, methods,
};

/* The RLIMIT_* numbers of this architecture, by name. */
static int
add_rlimits(PyObject *m)
{
    static const struct { const char *name; int value; } rlimits[] = {
        {"RLIMIT_CPU", RLIMIT_CPU}, {"RLIMIT_FSIZE", RLIMIT_FSIZE}, {"RLIMIT_DATA", RLIMIT_DATA},
        {"RLIMIT_STACK", RLIMIT_STACK}, {"RLIMIT_CORE", RLIMIT_CORE}, {"RLIMIT_RSS", RLIMIT_RSS},
        {"RLIMIT_NPROC", RLIMIT_NPROC}, {"RLIMIT_NOFILE", RLIMIT_NOFILE}, {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
        {"RLIMIT_AS", RLIMIT_AS}, {"RLIMIT_LOCKS", RLIMIT_LOCKS}, {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
        {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE}, {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
        {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    };
    PyObject *d = PyDict_New();
    if (d == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(rlimits) / sizeof(rlimits[0]); i++) {
        PyObject *v = PyLong_FromLong(rlimits[i].value);
        if (v == NULL || PyDict_SetItemString(d, rlimits[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(v);
    }
    if (PyModule_AddObject(m, "RLIMITS", d) < 0) {
        Py_DECREF(d);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__linux(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddIntConstant(m, "SECCOMP_FILTER", 1) < 0  /* seccomp_filter works */
                      || add_rlimits(m) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
