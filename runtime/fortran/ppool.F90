! ppool.F90 — `use ppool`: the Fortran binding of libppool (Fortran 2008 +
! ISO_C_BINDING), built as libppool_f. docs/fortran.md is its guide chapter.
!
! Shape (shared/reference/fortran.md; libxc's xc_f03_lib_m and mpi_f08):
!  - Handles are opaque derived types wrapping a type(c_ptr): pp_executor,
!    pp_future, pp_as_completed. They have no finalizer: a copy of a handle
!    aliases the same C object, so releasing is explicit (pp_future_release,
!    pp_executor_destroy), as in C.
!  - Errors: every call that can fail takes `integer, optional, intent(out)
!    :: ierr` (0 or the negative ppool/errno code, named by pp_strerror and
!    pp_error_name). Without ierr a failing call stops the program with
!    `error stop` and the error's name: a silent failure is worse.
!  - No BIND(C) mirror of a C struct that ppool.h says may grow (pp_config,
!    pp_submit_opts, pp_exception, pp_stats, pp_map_item, pp_map_status): the
!    C shim ppool_f.c reaches them with scalar accessors, so a field added in
!    C never breaks a compiled Fortran program.
!  - Task and item functions are BIND(C) module (or external) procedures
!    with the interfaces pp_task_fn / pp_item_fn, passed by name (the
!    module takes c_funloc at run time). They run in worker processes and cross to them as
!    (module, offset) tokens like C pp_fn pointers, so they work under every
!    start method.
!  - Typed procedures for real32/real64/int32/int64/complex64/complex128 and
!    bytes (int8) are generated at build time from ppool_kind*.f90.in
!    (cmake/ppool_fortran.cmake) and included below: one body per procedure,
!    no drift between kinds.
!
! Extension point: an optional layer (the MPI executor: module ppool_mpi,
! libppool_mpi_f) builds on this module through three public procedures
! only: pp_executor_from_c and pp_executor_c_ptr (to wrap the C handle its
! shim returns) and pp_check_error (the ierr/error stop convention). Nothing
! here needs to change for it.
!
! Process rules are ppool.h's: pp_executor / pp_future procedures in the
! client process (any thread), pp_task_* and pp_item_* only inside a task or
! item function in a worker.
module ppool
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: int8, int32, int64, real32, real64
  implicit none
  private

  ! ---- constants (checked against the C values by test_fortran) ----------
  integer(c_int), parameter, public :: PP_EBROKEN = -10001  !< pool broken
  integer(c_int), parameter, public :: PP_ETASK = -10002    !< the task raised
  integer(c_int), parameter, public :: PP_EWORKER = -10003  !< its worker died
  integer(c_int), parameter, public :: PP_EKILLED = -10004  !< killed (request or timeout)
  integer(c_int), parameter, public :: PP_ETOOBIG = -10005  !< over a configured limit
  integer(c_int), parameter, public :: PP_ENOFUNC = -10006  !< not callable in workers
  integer(c_int), parameter, public :: PP_EFORKED = -10007  !< handle of another process
  ! The negated errno values ppool returns (Linux numbering).
  integer(c_int), parameter, public :: PP_EINVAL = -22
  integer(c_int), parameter, public :: PP_ENOMEM = -12
  integer(c_int), parameter, public :: PP_ETIMEDOUT = -110
  integer(c_int), parameter, public :: PP_ECANCELED = -125
  integer(c_int), parameter, public :: PP_ESHUTDOWN = -108
  integer(c_int), parameter, public :: PP_ENOENT = -2
  integer(c_int), parameter, public :: PP_EALREADY = -114
  integer(c_int), parameter, public :: PP_EPROTO = -71

  integer(c_int), parameter, public :: PP_START_AUTO = 0, PP_START_FORK = 1, &
                                       PP_START_SPAWN = 2, PP_START_FORKSERVER = 3
  integer(c_int), parameter, public :: PP_PIN_COMPACT = 0, PP_PIN_SCATTER = 1, &
                                       PP_PIN_NONE = 2, PP_PIN_PUS = 3, PP_PIN_LIST = 4
  integer(c_int), parameter, public :: PP_DEATH_BREAK = 0, PP_DEATH_RESPAWN = 1
  integer(c_int), parameter, public :: PP_ALL_COMPLETED = 0, PP_FIRST_COMPLETED = 1, &
                                       PP_FIRST_EXCEPTION = 2
  integer(c_int), parameter, public :: PP_CODE_NONE = 0, PP_CODE_TASK = 1, &
                                       PP_CODE_SIGNAL = 2, PP_CODE_EXIT = 3
  integer(c_int), parameter, public :: PP_MESSAGE_MAX = 191
  !> Wait without a time limit (any negative timeout means the same).
  real(c_double), parameter, public :: PP_FOREVER = -1.0_c_double

  ! ---- handles ------------------------------------------------------------
  !> A pool (pp_executor_create .. pp_executor_destroy).
  type, public :: pp_executor
    private
    type(c_ptr) :: p = c_null_ptr
  end type
  !> One submitted call; one reference, given back with pp_future_release.
  type, public :: pp_future
    private
    type(c_ptr) :: p = c_null_ptr
  end type
  !> An as_completed iteration (pp_as_completed_begin .. _end).
  type, public :: pp_as_completed
    private
    type(c_ptr) :: p = c_null_ptr
    type(c_ptr), allocatable :: fs(:)   ! the futures, to report an index
  end type

  !> What went wrong with a task (pp_future_exception), or why a pool broke.
  type, public :: pp_exception
    integer :: error = 0          !< 0 or the code pp_future_result returns
    integer :: code = 0           !< task code, signal or exit status (see how)
    integer :: how = PP_CODE_NONE !< what code is: PP_CODE_*
    integer(int64) :: pid = 0     !< worker that ran it, 0 if none
    character(len=:), allocatable :: message  !< the task's message or a description
  end type

  !> Pool-wide counters (pp_executor_stats).
  type, public :: pp_stats
    integer :: workers = 0
    integer(int64) :: submitted = 0, backlog = 0, queued = 0, running = 0, &
                      completed = 0, failed = 0, cancelled = 0, killed = 0, &
                      respawns = 0
  end type
  !> One worker position's counters.
  type, public :: pp_worker_stats
    integer(int64) :: pid = 0, cpu = -1, core = -1, numa = -1, tasks = 0, &
                      busy_ns = 0, respawns = 0
  end type

  !> How a map ended (optional `status` of pp_map).
  type, public :: pp_map_status
    integer(int64) :: done = 0    !< items delivered; on error the failed item's 0-based position
    integer :: error = 0          !< 0 or the map's error
    integer :: code = 0           !< PP_ETASK: the item's code; PP_EWORKER: signal/exit status
    integer(int64) :: pid = 0     !< worker that ran the failed item
    integer(int64) :: chunks = 0, staged_bytes = 0, result_bytes = 0
    character(len=:), allocatable :: message
  end type

  ! ---- what users write ------------------------------------------------------
  ! Task, item and initializer functions are BIND(C) module (or external)
  ! procedures with these interfaces, passed by name: `call pp_submit(ex,
  ! my_task, x, f)`. The module takes c_funloc of the dummy procedure at run
  ! time. (Passing c_funloc(my_task) from the caller instead makes gfortran
  ! 12 place that address in a read-only constant, a text relocation in a
  ! PIE: docs/fortran.md.)
  abstract interface
    !> A task: reads pp_task_arg, sets pp_task_set_result, returns 0 (or
    !> non-zero / pp_task_raise to fail with PP_ETASK). Runs in a worker.
    integer(c_int) function pp_task_fn(t) bind(C)
      import :: c_int, c_ptr
      type(c_ptr), value :: t
    end function
    !> A map item function: reads pp_item_in, writes pp_item_out, returns 0.
    integer(c_int) function pp_item_fn(it) bind(C)
      import :: c_int, c_ptr
      type(c_ptr), value :: it
    end function
    !> An initializer: run in every worker before its first task with the
    !> initargs bytes; non-zero breaks the pool.
    integer(c_int) function pp_initializer_fn(args, size) bind(C)
      import :: c_int, c_ptr, c_size_t
      type(c_ptr), value :: args
      integer(c_size_t), value :: size
    end function
  end interface
  public :: pp_task_fn, pp_item_fn, pp_initializer_fn

  ! ---- public procedures --------------------------------------------------
  public :: pp_strerror, pp_error_name, pp_check_error, pp_version, pp_version_string
  public :: pp_executor_create, pp_executor_destroy, pp_shutdown
  public :: pp_terminate_workers, pp_kill_workers, pp_max_workers, pp_executor_resize, pp_start_method_used
  public :: pp_executor_stats, pp_executor_broken_cause, pp_executor_topology
  public :: pp_executor_from_c, pp_executor_c_ptr, pp_future_c_ptr
  public :: pp_submit, pp_submit_ptr
  public :: pp_future_result, pp_future_exception, pp_future_done, pp_future_running
  public :: pp_future_cancelled, pp_future_cancel, pp_future_kill, pp_future_release
  public :: pp_future_ref, pp_future_wait, pp_wait
  public :: pp_as_completed_begin, pp_as_completed_next, pp_as_completed_pending
  public :: pp_as_completed_end
  public :: pp_map
  public :: pp_shm_array, pp_shm_free, pp_shm_offset
  public :: pp_task_arg, pp_task_arg_size, pp_task_set_result, pp_task_set_result_ptr
  public :: pp_task_raise, pp_task_should_stop, pp_task_worker, pp_task_shm
  public :: pp_item_in, pp_item_out, pp_item_ctx, pp_item_index, pp_item_task
  public :: pp_map_raise, pp_map_should_stop
  public :: pp_task_arg_r4, pp_task_arg_r8, pp_task_arg_i4, pp_task_arg_i8
  public :: pp_task_arg_c4, pp_task_arg_c8, pp_task_arg_b

  ! ---- the C functions (ppool.h and the shim ppool_f.c) -------------------
  interface
    function c_strerror(err) bind(C, name='pp_strerror') result(s)
      import :: c_int, c_ptr
      integer(c_int), value :: err
      type(c_ptr) :: s
    end function
    function c_version() bind(C, name='pp_version') result(v)
      import :: c_int
      integer(c_int) :: v
    end function
    function c_version_string() bind(C, name='pp_version_string') result(s)
      import :: c_ptr
      type(c_ptr) :: s
    end function
    function c_strlen(s) bind(C, name='strlen') result(n)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: s
      integer(c_size_t) :: n
    end function

    function ppf_config_new() bind(C, name='ppf_config_new') result(c)
      import :: c_ptr
      type(c_ptr) :: c
    end function
    subroutine ppf_config_free(c) bind(C, name='ppf_config_free')
      import :: c_ptr
      type(c_ptr), value :: c
    end subroutine
    function ppf_config_set(c, name, len, v) bind(C, name='ppf_config_set') result(rc)
      import :: c_ptr, c_char, c_size_t, c_int64_t, c_int
      type(c_ptr), value :: c
      character(kind=c_char), intent(in) :: name(*)
      integer(c_size_t), value :: len
      integer(c_int64_t), value :: v
      integer(c_int) :: rc
    end function
    subroutine ppf_config_set_pin_cpus(c, cpus, n) bind(C, name='ppf_config_set_pin_cpus')
      import :: c_ptr, c_int
      type(c_ptr), value :: c, cpus
      integer(c_int), value :: n
    end subroutine
    subroutine ppf_config_set_initializer(c, fn, args, size) &
        bind(C, name='ppf_config_set_initializer')
      import :: c_ptr, c_funptr, c_size_t
      type(c_ptr), value :: c
      type(c_funptr), value :: fn
      type(c_ptr), value :: args
      integer(c_size_t), value :: size
    end subroutine
    function c_executor_create(ex, cfg) bind(C, name='pp_executor_create') result(rc)
      import :: c_ptr, c_int
      type(c_ptr), intent(out) :: ex
      type(c_ptr), value :: cfg
      integer(c_int) :: rc
    end function
    function c_executor_destroy(ex) bind(C, name='pp_executor_destroy') result(rc)
      import :: c_ptr, c_int
      type(c_ptr), value :: ex
      integer(c_int) :: rc
    end function
    function c_shutdown(ex, wait, cancel) bind(C, name='pp_shutdown') result(rc)
      import :: c_ptr, c_int, c_bool
      type(c_ptr), value :: ex
      logical(c_bool), value :: wait, cancel
      integer(c_int) :: rc
    end function
    function c_terminate_workers(ex) bind(C, name='pp_terminate_workers') result(rc)
      import :: c_ptr, c_int
      type(c_ptr), value :: ex
      integer(c_int) :: rc
    end function
    function c_kill_workers(ex) bind(C, name='pp_kill_workers') result(rc)
      import :: c_ptr, c_int
      type(c_ptr), value :: ex
      integer(c_int) :: rc
    end function
    function c_executor_resize(ex, n) bind(C, name='pp_executor_resize') result(rc)
      import :: c_ptr, c_int
      type(c_ptr), value :: ex
      integer(c_int), value :: n
      integer(c_int) :: rc
    end function
    function c_max_workers(ex) bind(C, name='pp_max_workers') result(n)
      import :: c_ptr, c_int
      type(c_ptr), value :: ex
      integer(c_int) :: n
    end function
    function c_start_method_used(ex) bind(C, name='pp_start_method_used') result(m)
      import :: c_ptr, c_int
      type(c_ptr), value :: ex
      integer(c_int) :: m
    end function
    function c_executor_topology(ex) bind(C, name='pp_executor_topology') result(s)
      import :: c_ptr
      type(c_ptr), value :: ex
      type(c_ptr) :: s
    end function
    function ppf_executor_stats(ex, out) bind(C, name='ppf_executor_stats') result(rc)
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: ex
      integer(c_int64_t), intent(out) :: out(9)
      integer(c_int) :: rc
    end function
    function ppf_worker_stats(ex, w, out) bind(C, name='ppf_worker_stats') result(rc)
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: ex
      integer(c_int), value :: w
      integer(c_int64_t), intent(out) :: out(7)
      integer(c_int) :: rc
    end function
    function ppf_broken_cause(ex, error, code, pid, how, msg) &
        bind(C, name='ppf_broken_cause') result(rc)
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: ex
      integer(c_int), intent(out) :: error, code, how
      integer(c_int64_t), intent(out) :: pid
      type(c_ptr), intent(out) :: msg
      integer(c_int) :: rc
    end function

    function ppf_submit(ex, fn, arg, size, has_timeout, timeout, has_grace, grace, out) &
        bind(C, name='ppf_submit') result(rc)
      import :: c_ptr, c_funptr, c_size_t, c_int, c_double
      type(c_ptr), value :: ex
      type(c_funptr), value :: fn
      type(c_ptr), value :: arg
      integer(c_size_t), value :: size
      integer(c_int), value :: has_timeout, has_grace
      real(c_double), value :: timeout, grace
      type(c_ptr), intent(out) :: out
      integer(c_int) :: rc
    end function
    function c_future_result(f, timeout, data, size) bind(C, name='pp_future_result') result(rc)
      import :: c_ptr, c_double, c_size_t, c_int
      type(c_ptr), value :: f
      real(c_double), value :: timeout
      type(c_ptr), intent(out) :: data
      integer(c_size_t), intent(out) :: size
      integer(c_int) :: rc
    end function
    function ppf_future_exception(f, timeout, error, code, pid, how, msg) &
        bind(C, name='ppf_future_exception') result(rc)
      import :: c_ptr, c_double, c_int, c_int64_t
      type(c_ptr), value :: f
      real(c_double), value :: timeout
      integer(c_int), intent(out) :: error, code, how
      integer(c_int64_t), intent(out) :: pid
      type(c_ptr), intent(out) :: msg
      integer(c_int) :: rc
    end function
    function c_future_done(f) bind(C, name='pp_future_done') result(b)
      import :: c_ptr, c_bool
      type(c_ptr), value :: f
      logical(c_bool) :: b
    end function
    function c_future_running(f) bind(C, name='pp_future_running') result(b)
      import :: c_ptr, c_bool
      type(c_ptr), value :: f
      logical(c_bool) :: b
    end function
    function c_future_cancelled(f) bind(C, name='pp_future_cancelled') result(b)
      import :: c_ptr, c_bool
      type(c_ptr), value :: f
      logical(c_bool) :: b
    end function
    function c_future_cancel(f) bind(C, name='pp_future_cancel') result(b)
      import :: c_ptr, c_bool
      type(c_ptr), value :: f
      logical(c_bool) :: b
    end function
    function c_future_kill(f, grace) bind(C, name='pp_future_kill') result(rc)
      import :: c_ptr, c_double, c_int
      type(c_ptr), value :: f
      real(c_double), value :: grace
      integer(c_int) :: rc
    end function
    function c_future_ref(f) bind(C, name='pp_future_ref') result(g)
      import :: c_ptr
      type(c_ptr), value :: f
      type(c_ptr) :: g
    end function
    subroutine c_future_release(f) bind(C, name='pp_future_release')
      import :: c_ptr
      type(c_ptr), value :: f
    end subroutine
    function c_wait(fs, n, timeout, when, done) bind(C, name='pp_wait') result(rc)
      import :: c_ptr, c_size_t, c_double, c_int, c_bool
      type(c_ptr), intent(in) :: fs(*)
      integer(c_size_t), value :: n
      real(c_double), value :: timeout
      integer(c_int), value :: when
      logical(c_bool), intent(out) :: done(*)
      integer(c_int) :: rc
    end function
    function c_as_completed_begin(it, fs, n, timeout) &
        bind(C, name='pp_as_completed_begin') result(rc)
      import :: c_ptr, c_size_t, c_double, c_int
      type(c_ptr), intent(out) :: it
      type(c_ptr), intent(in) :: fs(*)
      integer(c_size_t), value :: n
      real(c_double), value :: timeout
      integer(c_int) :: rc
    end function
    function c_as_completed_next(it, f) bind(C, name='pp_as_completed_next') result(rc)
      import :: c_ptr, c_int
      type(c_ptr), value :: it
      type(c_ptr), intent(out) :: f
      integer(c_int) :: rc
    end function
    function c_as_completed_pending(it) bind(C, name='pp_as_completed_pending') result(n)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: it
      integer(c_size_t) :: n
    end function
    subroutine c_as_completed_end(it) bind(C, name='pp_as_completed_end')
      import :: c_ptr
      type(c_ptr), value :: it
    end subroutine

    function c_shm_alloc(ex, size, p) bind(C, name='pp_shm_alloc') result(rc)
      import :: c_ptr, c_size_t, c_int
      type(c_ptr), value :: ex
      integer(c_size_t), value :: size
      type(c_ptr), intent(out) :: p
      integer(c_int) :: rc
    end function
    subroutine c_shm_free(ex, p) bind(C, name='pp_shm_free')
      import :: c_ptr
      type(c_ptr), value :: ex, p
    end subroutine
    function c_shm_offset(ex, p) bind(C, name='pp_shm_offset') result(off)
      import :: c_ptr, c_int64_t
      type(c_ptr), value :: ex, p
      integer(c_int64_t) :: off
    end function

    function c_task_arg(t, size) bind(C, name='pp_task_arg') result(p)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: t
      integer(c_size_t), intent(out) :: size
      type(c_ptr) :: p
    end function
    function c_task_set_result(t, data, size) bind(C, name='pp_task_set_result') result(rc)
      import :: c_ptr, c_size_t, c_int
      type(c_ptr), value :: t, data
      integer(c_size_t), value :: size
      integer(c_int) :: rc
    end function
    function ppf_task_raise(t, code, msg, len) bind(C, name='ppf_task_raise') result(rc)
      import :: c_ptr, c_int, c_char, c_size_t
      type(c_ptr), value :: t
      integer(c_int), value :: code
      character(kind=c_char), intent(in) :: msg(*)
      integer(c_size_t), value :: len
      integer(c_int) :: rc
    end function
    function c_task_should_stop(t) bind(C, name='pp_task_should_stop') result(b)
      import :: c_ptr, c_bool
      type(c_ptr), value :: t
      logical(c_bool) :: b
    end function
    function c_task_worker(t) bind(C, name='pp_task_worker') result(w)
      import :: c_ptr, c_int
      type(c_ptr), value :: t
      integer(c_int) :: w
    end function
    function c_task_shm(t, off) bind(C, name='pp_task_shm') result(p)
      import :: c_ptr, c_int64_t
      type(c_ptr), value :: t
      integer(c_int64_t), value :: off
      type(c_ptr) :: p
    end function

    function ppf_map(ex, fn, n_in, bases, counts, item_sizes, strides, out, out_count, &
                     out_size, has_chunksize, chunksize, has_timeout, timeout, buffersize, &
                     ctx, ctx_size, st_i, msg) bind(C, name='ppf_map') result(rc)
      import :: c_ptr, c_funptr, c_int, c_size_t, c_double, c_int64_t, c_char
      type(c_ptr), value :: ex
      type(c_funptr), value :: fn
      integer(c_int), value :: n_in
      type(c_ptr), intent(in) :: bases(*)
      integer(c_size_t), intent(in) :: counts(*), item_sizes(*), strides(*)
      type(c_ptr), value :: out
      integer(c_size_t), value :: out_count, out_size, chunksize, buffersize, ctx_size
      integer(c_int), value :: has_chunksize, has_timeout
      real(c_double), value :: timeout
      type(c_ptr), value :: ctx
      integer(c_int64_t), intent(out) :: st_i(6)
      character(kind=c_char), intent(out) :: msg(256)
      integer(c_int) :: rc
    end function
    function ppf_item_in(it, j, size) bind(C, name='ppf_item_in') result(p)
      import :: c_ptr, c_int, c_size_t
      type(c_ptr), value :: it
      integer(c_int), value :: j
      integer(c_size_t), intent(out) :: size
      type(c_ptr) :: p
    end function
    function ppf_item_out(it, cap) bind(C, name='ppf_item_out') result(p)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: it
      integer(c_size_t), intent(out) :: cap
      type(c_ptr) :: p
    end function
    function ppf_item_ctx(it, size) bind(C, name='ppf_item_ctx') result(p)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: it
      integer(c_size_t), intent(out) :: size
      type(c_ptr) :: p
    end function
    function ppf_item_index(it) bind(C, name='ppf_item_index') result(i)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: it
      integer(c_size_t) :: i
    end function
    function ppf_item_task(it) bind(C, name='ppf_item_task') result(t)
      import :: c_ptr
      type(c_ptr), value :: it
      type(c_ptr) :: t
    end function
    function ppf_map_raise(it, code, msg, len) bind(C, name='ppf_map_raise') result(rc)
      import :: c_ptr, c_int, c_char, c_size_t
      type(c_ptr), value :: it
      integer(c_int), value :: code
      character(kind=c_char), intent(in) :: msg(*)
      integer(c_size_t), value :: len
      integer(c_int) :: rc
    end function
    function c_map_should_stop(it) bind(C, name='pp_map_should_stop') result(b)
      import :: c_ptr, c_bool
      type(c_ptr), value :: it
      logical(c_bool) :: b
    end function
  end interface

  ! ---- typed procedures: generic interfaces (generated) --------------------
  include 'ppool_kinds_spec.inc'

contains

  ! ---- errors ---------------------------------------------------------------

  !> Copy a NUL-terminated C string into a Fortran string ('' for NULL).
  function c_to_f_string(s) result(f)
    type(c_ptr), intent(in) :: s
    character(len=:), allocatable :: f
    character(kind=c_char), pointer :: chars(:)
    integer(c_size_t) :: n, i
    if (.not. c_associated(s)) then
      f = ''
      return
    end if
    n = c_strlen(s)
    call c_f_pointer(s, chars, [n])
    allocate(character(len=n) :: f)
    do i = 1, n
      f(i:i) = chars(i)
    end do
  end function

  !> pp_strerror: the description of an error code. Any process, any thread.
  function pp_strerror(err) result(s)
    integer, intent(in) :: err
    character(len=:), allocatable :: s
    s = c_to_f_string(c_strerror(int(err, c_int)))
  end function

  !> The symbolic name of an error code ("PP_ETASK", "ETIMEDOUT", ...), or
  !> "error <n>" for a code ppool does not return.
  function pp_error_name(err) result(s)
    integer, intent(in) :: err
    character(len=:), allocatable :: s
    character(len=24) :: buf
    select case (err)
    case (0); s = 'OK'
    case (PP_EBROKEN); s = 'PP_EBROKEN'
    case (PP_ETASK); s = 'PP_ETASK'
    case (PP_EWORKER); s = 'PP_EWORKER'
    case (PP_EKILLED); s = 'PP_EKILLED'
    case (PP_ETOOBIG); s = 'PP_ETOOBIG'
    case (PP_ENOFUNC); s = 'PP_ENOFUNC'
    case (PP_EFORKED); s = 'PP_EFORKED'
    case (PP_EINVAL); s = 'EINVAL'
    case (PP_ENOMEM); s = 'ENOMEM'
    case (PP_ETIMEDOUT); s = 'ETIMEDOUT'
    case (PP_ECANCELED); s = 'ECANCELED'
    case (PP_ESHUTDOWN); s = 'ESHUTDOWN'
    case (PP_ENOENT); s = 'ENOENT'
    case (PP_EALREADY); s = 'EALREADY'
    case (PP_EPROTO); s = 'EPROTO'
    case default
      write (buf, '(a,i0)') 'error ', err
      s = trim(buf)
    end select
  end function

  !> The module's error convention, public for extension modules: with ierr
  !> present, store @rc in it; without, stop the program when @rc is an
  !> error, naming the call @what and the error.
  subroutine pp_check_error(rc, what, ierr)
    integer(c_int), intent(in) :: rc
    character(len=*), intent(in) :: what
    integer, intent(out), optional :: ierr
    if (present(ierr)) then
      ierr = int(rc)
    else if (rc < 0) then
      error stop 'ppool: ' // what // ': ' // pp_error_name(int(rc)) // ' (' // &
                 pp_strerror(int(rc)) // ')'
    end if
  end subroutine

  !> The library's version, as PPOOL_VERSION encodes it.
  integer function pp_version()
    pp_version = int(c_version())
  end function

  !> The library's version as a string, e.g. "0.1.0".
  function pp_version_string() result(s)
    character(len=:), allocatable :: s
    s = c_to_f_string(c_version_string())
  end function

  function opt_timeout(timeout) result(t)
    real(c_double), intent(in), optional :: timeout
    real(c_double) :: t
    t = PP_FOREVER
    if (present(timeout)) t = timeout
  end function

  ! ---- executor -------------------------------------------------------------

  !> Start a pool. Every argument but @ex is optional and keyword-named after
  !> its pp_config field; an absent one keeps pp_config_init's default
  !> (ppool.h documents each). Sizes are integer(int64) bytes. @pin_cpus is
  !> the OS PU list of pin=PP_PIN_LIST; @pin_strict=.true. refuses an
  !> impossible placement. @initializer (interface pp_initializer_fn) runs
  !> in every worker before its first
  !> task with the bytes of @initargs (copied; transfer() a value to bytes).
  !> Blocks until every worker started. Client process, any thread.
  subroutine pp_executor_create(ex, max_workers, start_method, pin, pin_cpus, pin_strict, &
                                max_arg_size, max_result_size, inline_size, arena_size, &
                                slots, on_worker_death, max_tasks_per_child, &
                                max_rss_growth, cores_per_worker, thread_env_override, &
                                ring_shards, huge_pages, initializer, initargs, ierr)
    type(pp_executor), intent(out) :: ex
    integer, intent(in), optional :: max_workers, start_method, pin, slots
    integer, intent(in), optional :: on_worker_death, max_tasks_per_child
    integer, intent(in), optional :: cores_per_worker, ring_shards
    integer, intent(in), optional :: pin_cpus(:)
    logical, intent(in), optional :: pin_strict, thread_env_override, huge_pages
    integer(int64), intent(in), optional :: max_arg_size, max_result_size, inline_size
    integer(int64), intent(in), optional :: arena_size, max_rss_growth
    procedure(pp_initializer_fn), optional :: initializer
    integer(int8), intent(in), optional :: initargs(:)
    integer, intent(out), optional :: ierr
    type(c_ptr) :: cfg
    integer(c_int) :: rc
    integer(c_int), allocatable, target :: cpus(:)
    integer(int8), allocatable, target :: args(:)
    type(c_ptr) :: argp

    cfg = ppf_config_new()
    rc = 0
    if (.not. c_associated(cfg)) rc = PP_ENOMEM
    ! One line per pp_config field (ppool_f.c's PPF_CONFIG_INT_FIELDS).
    if (present(max_workers)) call set('max_workers', int(max_workers, int64))
    if (present(start_method)) call set('start_method', int(start_method, int64))
    if (present(pin)) call set('pin', int(pin, int64))
    if (present(pin_strict)) call set('pin_strict', merge(1_int64, 0_int64, pin_strict))
    if (present(max_arg_size)) call set('max_arg_size', max_arg_size)
    if (present(max_result_size)) call set('max_result_size', max_result_size)
    if (present(inline_size)) call set('inline_size', inline_size)
    if (present(arena_size)) call set('arena_size', arena_size)
    if (present(slots)) call set('slots', int(slots, int64))
    if (present(on_worker_death)) call set('on_worker_death', int(on_worker_death, int64))
    if (present(max_tasks_per_child)) &
      call set('max_tasks_per_child', int(max_tasks_per_child, int64))
    if (present(max_rss_growth)) call set('max_rss_growth', max_rss_growth)
    if (present(cores_per_worker)) call set('cores_per_worker', int(cores_per_worker, int64))
    if (present(thread_env_override)) &
      call set('thread_env_override', merge(1_int64, 0_int64, thread_env_override))
    if (present(ring_shards)) call set('ring_shards', int(ring_shards, int64))
    if (present(huge_pages)) call set('huge_pages', merge(1_int64, 0_int64, huge_pages))
    if (rc == 0 .and. present(pin_cpus)) then
      allocate(cpus(max(size(pin_cpus), 1)))
      cpus(1:size(pin_cpus)) = int(pin_cpus, c_int)
      call ppf_config_set_pin_cpus(cfg, c_loc(cpus), int(size(pin_cpus), c_int))
    end if
    if (rc == 0 .and. present(initializer)) then
      argp = c_null_ptr
      if (present(initargs)) then
        allocate(args(max(size(initargs), 1)))
        args(1:size(initargs)) = initargs
        argp = c_loc(args)
        call ppf_config_set_initializer(cfg, c_funloc(initializer), argp, &
                                        size(initargs, kind=c_size_t))
      else
        call ppf_config_set_initializer(cfg, c_funloc(initializer), argp, 0_c_size_t)
      end if
    else if (rc == 0 .and. present(initargs)) then
      rc = PP_EINVAL   ! initargs without an initializer, as pp_executor_create refuses
    end if
    if (rc == 0) rc = c_executor_create(ex%p, cfg)
    if (c_associated(cfg)) call ppf_config_free(cfg)
    call pp_check_error(rc, 'pp_executor_create', ierr)
  contains
    subroutine set(name, v)
      character(len=*), intent(in) :: name
      integer(int64), intent(in) :: v
      if (rc == 0) rc = ppf_config_set(cfg, name, len(name, kind=c_size_t), &
                                       int(v, c_int64_t))
    end subroutine
  end subroutine

  !> Shut down (wait, then free); @ex becomes null. The last call on @ex.
  subroutine pp_executor_destroy(ex, ierr)
    type(pp_executor), intent(inout) :: ex
    integer, intent(out), optional :: ierr
    integer(c_int) :: rc
    rc = c_executor_destroy(ex%p)
    ex%p = c_null_ptr
    call pp_check_error(rc, 'pp_executor_destroy', ierr)
  end subroutine

  !> pp_shutdown: stop accepting work. @wait (default .true.) returns once
  !> everything ended; @cancel_futures (default .false.) cancels what no
  !> worker started.
  subroutine pp_shutdown(ex, wait, cancel_futures, ierr)
    type(pp_executor), intent(in) :: ex
    logical, intent(in), optional :: wait, cancel_futures
    integer, intent(out), optional :: ierr
    logical(c_bool) :: w, c
    w = .true.
    c = .false.
    if (present(wait)) w = logical(wait, c_bool)
    if (present(cancel_futures)) c = logical(cancel_futures, c_bool)
    call pp_check_error(c_shutdown(ex%p, w, c), 'pp_shutdown', ierr)
  end subroutine

  !> Python 3.14's terminate_workers(): shutdown(cancel), SIGTERM every worker.
  subroutine pp_terminate_workers(ex, ierr)
    type(pp_executor), intent(in) :: ex
    integer, intent(out), optional :: ierr
    call pp_check_error(c_terminate_workers(ex%p), 'pp_terminate_workers', ierr)
  end subroutine

  !> As pp_terminate_workers, with SIGKILL.
  subroutine pp_kill_workers(ex, ierr)
    type(pp_executor), intent(in) :: ex
    integer, intent(out), optional :: ierr
    call pp_check_error(c_kill_workers(ex%p), 'pp_kill_workers', ierr)
  end subroutine

  !> pp_executor_resize: grow or shrink the running pool to @max_workers
  !> workers (new ones placed by the same plan; a busy worker retires after
  !> its task, none is killed). Client process, not from a task.
  subroutine pp_executor_resize(ex, max_workers, ierr)
    type(pp_executor), intent(in) :: ex
    integer, intent(in) :: max_workers
    integer, intent(out), optional :: ierr
    call pp_check_error(c_executor_resize(ex%p, int(max_workers, c_int)), &
                        'pp_executor_resize', ierr)
  end subroutine

  !> Number of worker processes (or a negative code for a null executor).
  integer function pp_max_workers(ex)
    type(pp_executor), intent(in) :: ex
    pp_max_workers = int(c_max_workers(ex%p))
  end function

  !> The start method the pool uses (PP_START_FORK/SPAWN/FORKSERVER).
  integer function pp_start_method_used(ex)
    type(pp_executor), intent(in) :: ex
    pp_start_method_used = int(c_start_method_used(ex%p))
  end function

  !> One line describing the machine and the pin policy.
  function pp_executor_topology(ex) result(s)
    type(pp_executor), intent(in) :: ex
    character(len=:), allocatable :: s
    s = c_to_f_string(c_executor_topology(ex%p))
  end function

  !> Counters: pool-wide into @st, and per worker into @workers(1..) when
  !> given (as many as both have). Does not block.
  subroutine pp_executor_stats(ex, st, workers, ierr)
    type(pp_executor), intent(in) :: ex
    type(pp_stats), intent(out) :: st
    type(pp_worker_stats), intent(out), optional :: workers(:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t) :: v(9), w(7)
    integer(c_int) :: rc
    integer :: i
    rc = ppf_executor_stats(ex%p, v)
    if (rc >= 0) then
      st = pp_stats(int(rc), v(1), v(2), v(3), v(4), v(5), v(6), v(7), v(8), v(9))
      if (present(workers)) then
        do i = 1, min(size(workers), st%workers)
          rc = ppf_worker_stats(ex%p, int(i - 1, c_int), w)
          if (rc < 0) exit
          workers(i) = pp_worker_stats(w(1), w(2), w(3), w(4), w(5), w(6), w(7))
        end do
      end if
    end if
    call pp_check_error(min(rc, 0_c_int), 'pp_executor_stats', ierr)
  end subroutine

  !> Why the pool broke (error 0 when it is not broken).
  subroutine pp_executor_broken_cause(ex, exc, ierr)
    type(pp_executor), intent(in) :: ex
    type(pp_exception), intent(out) :: exc
    integer, intent(out), optional :: ierr
    integer(c_int) :: rc, e, c, h
    integer(c_int64_t) :: pid
    type(c_ptr) :: msg
    rc = ppf_broken_cause(ex%p, e, c, pid, h, msg)
    if (rc == 0) then
      call set_exception(exc, e, c, h, pid, msg)
    else
      exc%message = ''
    end if
    call pp_check_error(rc, 'pp_executor_broken_cause', ierr)
  end subroutine

  ! Field by field: gfortran 12 fails (ICE) on a structure constructor
  ! whose allocatable character component comes from a function result.
  subroutine set_exception(exc, e, c, h, pid, msg)
    type(pp_exception), intent(inout) :: exc
    integer(c_int), intent(in) :: e, c, h
    integer(c_int64_t), intent(in) :: pid
    type(c_ptr), intent(in) :: msg
    exc%error = int(e)
    exc%code = int(c)
    exc%how = int(h)
    exc%pid = int(pid, int64)
    exc%message = c_to_f_string(msg)
  end subroutine

  !> Wrap a C pp_executor * (from C code, or an extension module's shim).
  !> The Fortran handle then owns it: destroy it once, from either side.
  function pp_executor_from_c(p) result(ex)
    type(c_ptr), intent(in) :: p
    type(pp_executor) :: ex
    ex%p = p
  end function

  !> The C pp_executor * behind @ex (to pass to C code).
  function pp_executor_c_ptr(ex) result(p)
    type(pp_executor), intent(in) :: ex
    type(c_ptr) :: p
    p = ex%p
  end function

  !> The C pp_future * behind @f.
  function pp_future_c_ptr(f) result(p)
    type(pp_future), intent(in) :: f
    type(c_ptr) :: p
    p = f%p
  end function

  ! ---- submit -----------------------------------------------------------------

  !> Submit fn with @nbytes raw bytes at @arg (copied before return).
  !> @timeout: run-time limit in seconds (default none); @kill_grace:
  !> seconds from SIGTERM to SIGKILL when it fires (default 1).
  subroutine pp_submit_ptr(ex, fn, arg, nbytes, f, timeout, kill_grace, ierr)
    type(pp_executor), intent(in) :: ex
    procedure(pp_task_fn) :: fn
    type(c_ptr), intent(in) :: arg
    integer(c_size_t), intent(in) :: nbytes
    type(pp_future), intent(out) :: f
    real(c_double), intent(in), optional :: timeout, kill_grace
    integer, intent(out), optional :: ierr
    integer(c_int) :: ht, hg
    real(c_double) :: t, g
    ht = 0
    hg = 0
    t = PP_FOREVER
    g = 1.0_c_double
    if (present(timeout)) then
      ht = 1
      t = timeout
    end if
    if (present(kill_grace)) then
      hg = 1
      g = kill_grace
    end if
    call pp_check_error(ppf_submit(ex%p, c_funloc(fn), arg, nbytes, ht, t, hg, g, f%p), &
                        'pp_submit', ierr)
  end subroutine

  ! ---- futures ----------------------------------------------------------------

  !> Wait for the raw result: its address (valid until the future is
  !> released) and size in bytes.
  integer(c_int) function result_raw(f, timeout, data, n) result(rc)
    type(pp_future), intent(in) :: f
    real(c_double), intent(in), optional :: timeout
    type(c_ptr), intent(out) :: data
    integer(c_size_t), intent(out) :: n
    data = c_null_ptr
    n = 0
    rc = c_future_result(f%p, opt_timeout(timeout), data, n)
  end function

  !> pp_future_result without the result data (a task that sets none, or
  !> one whose result is not wanted): wait up to @timeout (default forever)
  !> and report the outcome as pp_future_result would.
  subroutine pp_future_wait(f, timeout, ierr)
    type(pp_future), intent(in) :: f
    real(c_double), intent(in), optional :: timeout
    integer, intent(out), optional :: ierr
    type(c_ptr) :: data
    integer(c_size_t) :: n
    call pp_check_error(result_raw(f, timeout, data, n), 'pp_future_result', ierr)
  end subroutine

  !> Wait like pp_future_result, then describe the outcome in @exc (error
  !> 0 for success; the message is copied). ierr: 0, ETIMEDOUT, EINVAL.
  subroutine pp_future_exception(f, exc, timeout, ierr)
    type(pp_future), intent(in) :: f
    type(pp_exception), intent(out) :: exc
    real(c_double), intent(in), optional :: timeout
    integer, intent(out), optional :: ierr
    integer(c_int) :: rc, e, c, h
    integer(c_int64_t) :: pid
    type(c_ptr) :: msg
    rc = ppf_future_exception(f%p, opt_timeout(timeout), e, c, pid, h, msg)
    if (rc == 0) then
      call set_exception(exc, e, c, h, pid, msg)
    else
      exc%message = ''
    end if
    call pp_check_error(rc, 'pp_future_exception', ierr)
  end subroutine

  !> .true. once the task finished, failed or was cancelled.
  logical function pp_future_done(f)
    type(pp_future), intent(in) :: f
    pp_future_done = c_future_done(f%p)
  end function

  !> .true. only while a worker executes it.
  logical function pp_future_running(f)
    type(pp_future), intent(in) :: f
    pp_future_running = c_future_running(f%p)
  end function

  !> .true. if it was cancelled.
  logical function pp_future_cancelled(f)
    type(pp_future), intent(in) :: f
    pp_future_cancelled = c_future_cancelled(f%p)
  end function

  !> Cancel it if no worker started it: .true. if it is now cancelled.
  logical function pp_future_cancel(f)
    type(pp_future), intent(in) :: f
    pp_future_cancel = c_future_cancel(f%p)
  end function

  !> Stop the task now: SIGTERM, SIGKILL after @grace seconds (default 1).
  !> ierr: 0, EALREADY (already finished), EINVAL.
  subroutine pp_future_kill(f, grace, ierr)
    type(pp_future), intent(in) :: f
    real(c_double), intent(in), optional :: grace
    integer, intent(out), optional :: ierr
    real(c_double) :: g
    g = 1.0_c_double
    if (present(grace)) g = grace
    call pp_check_error(c_future_kill(f%p, g), 'pp_future_kill', ierr)
  end subroutine

  !> Another reference to the same future (release each one).
  function pp_future_ref(f) result(g)
    type(pp_future), intent(in) :: f
    type(pp_future) :: g
    g%p = c_future_ref(f%p)
  end function

  !> Give back the reference; @f becomes null (releasing a null one is a
  !> no-op). Result pointers obtained from it are invalid afterwards.
  subroutine pp_future_release(f)
    type(pp_future), intent(inout) :: f
    call c_future_release(f%p)
    f%p = c_null_ptr
  end subroutine

  !> Wait for @fs until @return_when (default PP_ALL_COMPLETED) holds or
  !> @timeout passes (a timeout is not an error). @done(i): fs(i) is done;
  !> @ndone: distinct done futures.
  subroutine pp_wait(fs, timeout, return_when, done, ndone, ierr)
    type(pp_future), intent(in) :: fs(:)
    real(c_double), intent(in), optional :: timeout
    integer, intent(in), optional :: return_when
    logical, intent(out), optional :: done(:)
    integer, intent(out), optional :: ndone
    integer, intent(out), optional :: ierr
    type(c_ptr) :: ps(max(size(fs), 1))
    logical(c_bool) :: flags(max(size(fs), 1))
    integer(c_int) :: rc, when
    integer :: i
    when = PP_ALL_COMPLETED
    if (present(return_when)) when = int(return_when, c_int)
    do i = 1, size(fs)
      ps(i) = fs(i)%p
    end do
    flags = .false.
    rc = c_wait(ps, size(fs, kind=c_size_t), opt_timeout(timeout), when, flags)
    if (present(done)) then
      done = .false.
      do i = 1, min(size(done), size(fs))
        done(i) = flags(i)
      end do
    end if
    if (present(ndone)) ndone = max(int(rc), 0)
    call pp_check_error(min(rc, 0_c_int), 'pp_wait', ierr)
  end subroutine

  !> Iterate over @fs as they finish, with one deadline @timeout seconds
  !> from now (default none). Keep the futures alive until _end.
  subroutine pp_as_completed_begin(it, fs, timeout, ierr)
    type(pp_as_completed), intent(out) :: it
    type(pp_future), intent(in) :: fs(:)
    real(c_double), intent(in), optional :: timeout
    integer, intent(out), optional :: ierr
    integer :: i
    allocate(it%fs(max(size(fs), 1)))
    it%fs = c_null_ptr
    do i = 1, size(fs)
      it%fs(i) = fs(i)%p
    end do
    call pp_check_error(c_as_completed_begin(it%p, it%fs, size(fs, kind=c_size_t), &
                                             opt_timeout(timeout)), &
                        'pp_as_completed_begin', ierr)
  end subroutine

  !> The next finished future: .true. with @f (the same handle as
  !> fs(@index), not a new reference) set; .false. when all were yielded
  !> (ierr 0) or on an error (ierr ETIMEDOUT once the deadline passed;
  !> without ierr an error stops the program).
  logical function pp_as_completed_next(it, f, index, ierr) result(got)
    type(pp_as_completed), intent(inout) :: it
    type(pp_future), intent(out) :: f
    integer, intent(out), optional :: index
    integer, intent(out), optional :: ierr
    integer(c_int) :: rc
    integer :: i
    got = .false.
    if (present(index)) index = 0
    rc = c_as_completed_next(it%p, f%p)
    if (rc == 0) then
      got = .true.
      if (present(index)) then
        do i = 1, size(it%fs)
          if (c_associated(it%fs(i), f%p)) then
            index = i
            exit
          end if
        end do
      end if
    else if (rc == PP_ENOENT) then
      rc = 0
    end if
    call pp_check_error(rc, 'pp_as_completed_next', ierr)
  end function

  !> Futures not yet yielded.
  integer function pp_as_completed_pending(it)
    type(pp_as_completed), intent(in) :: it
    pp_as_completed_pending = int(c_as_completed_pending(it%p))
  end function

  !> Free the iterator.
  subroutine pp_as_completed_end(it)
    type(pp_as_completed), intent(inout) :: it
    call c_as_completed_end(it%p)
    it%p = c_null_ptr
    if (allocated(it%fs)) deallocate(it%fs)
  end subroutine

  ! ---- map (shared part) ------------------------------------------------------

  !> Run ppf_map over @n_in inputs and unpack its status.
  subroutine map_run(what, ex, fn, n_in, bases, counts, isz, strides, out, out_count, &
                     out_size, chunksize, timeout, buffersize, ctx, status, ierr)
    character(len=*), intent(in) :: what
    type(pp_executor), intent(in) :: ex
    type(c_funptr), value :: fn
    integer, intent(in) :: n_in
    type(c_ptr), intent(in) :: bases(:)
    integer(c_size_t), intent(in) :: counts(:), isz(:), strides(:)
    type(c_ptr), intent(in) :: out
    integer(c_size_t), intent(in) :: out_count, out_size
    integer, intent(in), optional :: chunksize, buffersize
    real(c_double), intent(in), optional :: timeout
    integer(int8), intent(in), optional, target :: ctx(:)
    type(pp_map_status), intent(out), optional :: status
    integer, intent(out), optional :: ierr
    integer(c_int64_t) :: st(6)
    character(kind=c_char) :: msg(256)
    integer(c_int) :: rc, hc, ht
    integer(c_size_t) :: cs, bs, ctx_size
    type(c_ptr) :: ctxp
    real(c_double) :: t
    integer :: i
    hc = 0
    ht = 0
    cs = 1
    bs = 0
    t = PP_FOREVER
    ctxp = c_null_ptr
    ctx_size = 0
    if (present(chunksize)) then
      hc = 1
      cs = int(max(chunksize, 0), c_size_t)   ! 0 (and below): pp_map's EINVAL
    end if
    if (present(buffersize)) bs = int(max(buffersize, 0), c_size_t)
    if (present(timeout)) then
      ht = 1
      t = timeout
    end if
    if (present(ctx)) then
      if (size(ctx) > 0) then
        ctxp = c_loc(ctx)
        ctx_size = size(ctx, kind=c_size_t)
      end if
    end if
    st = 0
    msg = c_null_char
    rc = ppf_map(ex%p, fn, int(n_in, c_int), bases, counts, isz, strides, out, out_count, &
                 out_size, hc, cs, ht, t, bs, ctxp, ctx_size, st, msg)
    if (present(status)) then
      status%done = st(1)
      status%error = int(rc)
      status%code = int(st(2))
      status%pid = st(3)
      status%chunks = st(4)
      status%staged_bytes = st(5)
      status%result_bytes = st(6)
      status%message = ''
      do i = 1, size(msg)
        if (msg(i) == c_null_char) exit
        status%message = status%message // msg(i)
      end do
    end if
    call pp_check_error(rc, what, ierr)
  end subroutine

  !> A map refused before it starts (@why), reported as EINVAL.
  subroutine map_refuse(what, why, status, ierr)
    character(len=*), intent(in) :: what, why
    type(pp_map_status), intent(out), optional :: status
    integer, intent(out), optional :: ierr
    if (present(status)) then
      status%error = PP_EINVAL
      status%message = why
    end if
    call pp_check_error(PP_EINVAL, what // ': ' // why, ierr)
  end subroutine

  ! ---- task side (shared part) ----------------------------------------------------

  !> Size in bytes of the task's argument.
  integer(int64) function pp_task_arg_size(t)
    type(c_ptr), intent(in) :: t
    integer(c_size_t) :: n
    type(c_ptr) :: p
    p = c_task_arg(t, n)
    pp_task_arg_size = int(n, int64)
  end function

  !> Set the result to @nbytes raw bytes at @data (copied). Returns 0,
  !> PP_ETOOBIG or PP_ENOMEM (the future then fails with it).
  integer(c_int) function pp_task_set_result_ptr(t, data, nbytes)
    type(c_ptr), intent(in) :: t, data
    integer(c_size_t), intent(in) :: nbytes
    pp_task_set_result_ptr = c_task_set_result(t, data, nbytes)
  end function

  !> Fail the task with @code and @message (cut to PP_MESSAGE_MAX bytes);
  !> returns PP_ETASK, for `rc = pp_task_raise(...)`.
  integer(c_int) function pp_task_raise(t, code, message)
    type(c_ptr), intent(in) :: t
    integer, intent(in) :: code
    character(len=*), intent(in) :: message
    pp_task_raise = ppf_task_raise(t, int(code, c_int), message, len(message, kind=c_size_t))
  end function

  !> .true. when the task should stop early (shutdown with cancel, broken
  !> pool, being killed).
  logical function pp_task_should_stop(t)
    type(c_ptr), intent(in) :: t
    pp_task_should_stop = c_task_should_stop(t)
  end function

  !> Index (0 .. max_workers-1) of the worker running the task.
  integer function pp_task_worker(t)
    type(c_ptr), intent(in) :: t
    pp_task_worker = int(c_task_worker(t))
  end function

  !> 1-based position of the item in the map (as in the Fortran arrays).
  integer(int64) function pp_item_index(it)
    type(c_ptr), intent(in) :: it
    pp_item_index = int(ppf_item_index(it), int64) + 1
  end function

  !> The map's runner task (for pp_task_worker, pp_task_shm).
  function pp_item_task(it) result(t)
    type(c_ptr), intent(in) :: it
    type(c_ptr) :: t
    t = ppf_item_task(it)
  end function

  !> Fail this item with @code and @message; returns PP_ETASK.
  integer(c_int) function pp_map_raise(it, code, message)
    type(c_ptr), intent(in) :: it
    integer, intent(in) :: code
    character(len=*), intent(in) :: message
    pp_map_raise = ppf_map_raise(it, int(code, c_int), message, len(message, kind=c_size_t))
  end function

  !> .true. when the map was stopped or the pool is stopping.
  logical function pp_map_should_stop(it)
    type(c_ptr), intent(in) :: it
    pp_map_should_stop = c_map_should_stop(it)
  end function

  !> A raw item view: address of input @j (1-based) and its element count
  !> for elements of @esz bytes; stops the worker's task with an error
  !> message through the map when @j is out of range (it cannot return one).
  subroutine item_in_raw(it, j, esz, p, n)
    type(c_ptr), intent(in) :: it
    integer, intent(in) :: j
    integer(c_size_t), intent(in) :: esz
    type(c_ptr), intent(out) :: p
    integer(c_size_t), intent(out) :: n
    integer(c_size_t) :: bytes
    p = ppf_item_in(it, int(j - 1, c_int), bytes)
    n = bytes / esz
  end subroutine

  ! ---- typed procedures (generated) ---------------------------------------------
  include 'ppool_kinds_proc.inc'

end module ppool
